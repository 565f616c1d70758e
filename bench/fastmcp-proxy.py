"""FastMCP's proxy in front of one MCP server, for the forward benchmark's peer line.

Run: python3 bench/fastmcp-proxy.py <upstream MCP URL> <port>
Prints one JSON line with its URL once it listens.
"""
import json
import socket
import sys
import threading
import time

from fastmcp.server.server import create_proxy


def announce(url: str, port: int) -> None:
    # Printed once the port accepts connections, so the benchmark starts measuring a ready server.
    for _ in range(600):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                print(json.dumps({"url": url}), flush=True)
                return
        except OSError:
            time.sleep(0.05)


def main() -> None:
    upstream, port = sys.argv[1], int(sys.argv[2])
    proxy = create_proxy(upstream, name="fastmcp-proxy")
    threading.Thread(target=announce, args=(f"http://127.0.0.1:{port}/mcp", port), daemon=True).start()
    proxy.run(transport="http", host="127.0.0.1", port=port, show_banner=False, log_level="error")


if __name__ == "__main__":
    main()
