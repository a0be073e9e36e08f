"""Drives `runbook mcp` with the official Python MCP SDK through the PostgreSQL story.

Reads a job (JSON) naming the server binary, its state directory, its environment, the
first draft, the fixed command and the known issue; prints the transcript (JSON): every
call, whether it was a tool error, and its structured result.
"""
import asyncio
import json
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


async def main(job):
    params = StdioServerParameters(
        command=job["server"],
        args=["mcp", "--state-dir", job["state"], "--root", job["root"]],
        env=job["env"],
    )
    transcript = []
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()

            async def call(name, args):
                result = await session.call_tool(name, args)
                # A tool error is JSON text in `content`, with no structured content.
                value = (
                    json.loads(result.content[0].text)
                    if result.is_error
                    else result.structured_content
                )
                transcript.append(
                    {"tool": name, "isError": bool(result.is_error), "result": value}
                )
                if result.is_error:
                    raise RuntimeError(f"{name} failed")
                return result.structured_content

            try:
                await call("validate", {"runbook": job["draft"]})
                started = await call(
                    "session_start",
                    {"runbook": job["draft"], "lifetime": "session", "vars": job["vars"]},
                )
                sid = started["session"]
                while True:
                    step = await call("run_next", {"session": sid})
                    if step["done"] or step["step"]["status"] == "failed":
                        break
                await call(
                    "amend",
                    {"session": sid, "step": step["step"]["id"], "run": job["fixedRun"], **job["issue"]},
                )
                await call("retry", {"session": sid})
                await call("run_next", {"session": sid})
                await call("rollback", {"session": sid})
                await call("finish", {"session": sid, "out": job["out"]})
            except RuntimeError:
                pass
    json.dump(transcript, sys.stdout)


asyncio.run(main(json.load(open(sys.argv[1]))))
