//! Ports for daemons under test (shared by both test crates).

/// A port free now, below the kernel's ephemeral range (32768 and up by default) and
/// never handed out twice in this process: an ephemeral port picked by the kernel can be
/// taken by another test's outgoing connection before the daemon under test binds it.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        20000 + (std::process::id() % 5000) as u16,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    loop {
        let port = NEXT.fetch_add(1, Ordering::SeqCst);
        assert!(port < 32000, "no free port left below the ephemeral range");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}
