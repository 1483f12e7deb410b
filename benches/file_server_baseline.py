"""The Python tutorials' file server, as the baseline for benches/file_server.rs.

A thread per client, blocking sockets, and the tutorials' protocol: a command, then the file's
bytes, then "##" as the end marker. Two departures, both in its favour: the command ends with a
newline (the tutorials rely on `time.sleep(0.1)` to keep the command and the data apart, which
alone would cost 100 s for 1,000 files), and an upload is acknowledged with "ok" once written,
so that the client can time it. Like the tutorials, it checks no path, and a file that contains
"##" is cut short (the benchmark's data has no '#').

    python3 benches/file_server_baseline.py ROOT [PORT]    # prints "listening on 127.0.0.1:PORT"

Commands: "get NAME\\n" -> bytes + "##"; "put NAME\\n" + bytes + "##" -> "ok"; "list\\n" -> names
+ "##"; "quit\\n".
"""

import os
import socket
import sys
import threading

CHUNK = 65536


def serve(conn, root):
    with conn:
        buf = b""
        while True:
            while b"\n" not in buf:
                data = conn.recv(CHUNK)
                if not data:
                    return
                buf += data
            line, buf = buf.split(b"\n", 1)
            cmd, _, name = line.decode().partition(" ")
            if cmd == "get":
                with open(os.path.join(root, name), "rb") as f:
                    while True:
                        data = f.read(CHUNK)
                        if not data:
                            break
                        conn.sendall(data)
                conn.sendall(b"##")
            elif cmd == "put":
                with open(os.path.join(root, name), "wb") as f:
                    while True:
                        if buf.endswith(b"##"):
                            f.write(buf[:-2])
                            buf = b""
                            break
                        # Keep the last byte back: it may be the first '#' of the marker.
                        f.write(buf[:-1])
                        buf = buf[-1:]
                        data = conn.recv(CHUNK)
                        if not data:
                            return
                        buf += data
                conn.sendall(b"ok")
            elif cmd == "list":
                conn.sendall("\n".join(sorted(os.listdir(root))).encode() + b"##")
            else:
                return


def main():
    root = sys.argv[1]
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    print("listening on %s:%d" % sock.getsockname(), flush=True)
    while True:
        conn, _ = sock.accept()
        threading.Thread(target=serve, args=(conn, root), daemon=True).start()


if __name__ == "__main__":
    main()
