#!/bin/sh
# The built-in demo workload: a small scripted "agent" that behaves like a
# coding agent on a project. It reads the project, edits and renames files,
# uses a temp file, runs an interpreter, talks TCP on localhost, and (as a
# prompt-injected agent might) tries to read the user's SSH key.
set -eu
mkdir -p src build
printf 'fn main() { println!("hello"); }\n' > src/main.rs
cat src/main.rs > /dev/null
ls -la src > build/listing.txt
# Editor-style save: write a temp file, then rename it over the original.
printf 'fn main() { println!("hello, nono"); }\n' > src/.main.rs.swp
mv src/.main.rs.swp src/main.rs
scratch=$(mktemp)
echo "scratch" > "$scratch"
rm -f "$scratch"
python3 - <<'PY'
import json, socket
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 47011))
srv.listen(1)
cli = socket.create_connection(("127.0.0.1", 47011))
peer, _ = srv.accept()
cli.sendall(b"ping")
assert peer.recv(4) == b"ping"
with open("build/report.json", "w") as f:
    json.dump({"lines": sum(1 for _ in open("src/main.rs"))}, f)
PY
cat "$HOME/.ssh/id_rsa" > /dev/null 2>&1 || true
echo "agent: done"
