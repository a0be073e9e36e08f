# render_config STEP PATH MODE: fills the ${VAR} placeholders of PACKAGE_DIR/PATH from the
# environment into RENDER_DIR/PATH (mode MODE: 0600 when it holds a secret), and journals
# it for rollback.sh. One pass, as the sandbox fills them: the text before each `${` is
# copied; `${NAME}` of a declared variable becomes its value, which is never scanned
# again; anything else stays as written. Parameter expansion only (no eval, no envsubst).
# Line by line (each line keeps its newline), which changes nothing, as no name holds a
# newline, and keeps it linear in the size of the file.
render_config() {
  local rest out="" name="" lines=()
  mapfile lines < "$PACKAGE_DIR/$2"
  for rest in "${lines[@]}"; do
    while [[ "$rest" == *'${'* ]]; do
      out+=${rest%%'${'*}
      rest=${rest#*'${'}
      name=""
      [[ "$rest" != *'}'* ]] || name=${rest%%'}'*}
      case "$name" in
!DECLARED!
        *) out+='${' ;;
      esac
    done
    out+=$rest
  done
  mkdir -p "$(dirname "$RENDER_DIR/$2")"
  (umask 077 && printf '%s' "$out" > "$RENDER_DIR/$2")
  chmod "$3" "$RENDER_DIR/$2"
  if [ "$RENDER_DIR" = "$WORK_DIR" ]; then journal file "$1" "$2"; fi
}

