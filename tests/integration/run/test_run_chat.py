#!/usr/bin/env python3
"""test_run_chat.py - `spoke run MODEL` as a conversation, driven through a
real terminal: tmux (its own server socket) runs spoke in a pane, keys go in
with send-keys and the screen is read back with capture-pane. Checks: the
first reply equals the one-shot `spoke run --chat` greedy reply; the second
turn's prompt is longer (history kept in the context); /clear forgets it (the
next reply equals the first again); /set temperature, an unknown /set, /system;
a \"\"\" multi-line message is one message; Ctrl-C stops a long reply
("[stopped]") and the chat goes on; Ctrl-C at the prompt only prints a hint;
--verbose prints tokens/s after each reply; /bye exits 0; piped stdin keeps
the one-shot behaviour. Skips (77) without tmux."""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

SKIP = 77
SPOKE = os.environ.get("SPOKE_BIN", "build/spoke")
SRC = os.environ.get("SPOKE_SRC_DIR", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
MODEL = os.path.join(SRC, "models", "stories260K.gguf")
if not shutil.which("tmux"):
    print("SKIP: tmux is not installed (tools/test-deps.sh installs it)")
    sys.exit(SKIP)
if not os.path.exists(MODEL):
    print("SKIP: %s missing" % MODEL)
    sys.exit(SKIP)

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("  FAIL:", what, flush=True)
    return cond


tmp = tempfile.mkdtemp(prefix="spoke-chat-")
sock = "spoke-test-%d" % os.getpid()
status_file = os.path.join(tmp, "status")
env = dict(os.environ, SPOKE_LOG="warn", SPOKE_HOME=tmp)


def tmux(*args, check_rc=True):
    return subprocess.run(["tmux", "-L", sock] + list(args), capture_output=True, text=True, env=env,
                          check=check_rc)


def screen():
    return tmux("capture-pane", "-p", "-J", "-S", "-2000", "-t", "chat").stdout


def wait_for(pred, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        s = screen()
        if pred(s):
            return s
        time.sleep(0.05)
    return None


def prompts(s):
    return len(re.findall(r"^>>> ", s, re.M))


def stats(s):
    return [int(x) for x in re.findall(r"^prompt: (\d+) tokens, .* tokens/s \| reply: \d+ tokens, .* tokens/s", s,
                                       re.M)]


def send_line(text):
    """Type a line, wait until the reply is done (a new >>> prompt); returns the screen."""
    before = prompts(screen())
    tmux("send-keys", "-t", "chat", "-l", text)
    tmux("send-keys", "-t", "chat", "Enter")
    return wait_for(lambda s: prompts(s) > before)


def reply_after(s, line):
    """Text printed after the last '>>> line' up to the next blank line."""
    i = s.rfind(">>> " + line)
    if i < 0:
        return None
    rest = s[i + len(">>> " + line):].lstrip("\n")
    return rest.split("\n\n", 1)[0].strip()


try:
    one = subprocess.run([SPOKE, "run", MODEL, "Once upon a time", "--chat", "--temp", "0", "-n", "12"],
                         capture_output=True, text=True, env=env, timeout=60)
    check(one.returncode == 0, "one-shot --chat runs")
    expected = one.stdout.strip()
    cmd = "%s run %s --temp 0 -n 12 --verbose; echo EXITED rc=$? > %s" % (SPOKE, MODEL, status_file)
    tmux("new-session", "-d", "-s", "chat", "-x", "160", "-y", "50", cmd)
    check(wait_for(lambda s: ">>> " in s) is not None, "a >>> prompt appears")

    s = send_line("Once upon a time")
    check(s is not None, "first reply done")
    r1 = reply_after(s or "", "Once upon a time")
    check(r1 == expected, "first reply = one-shot --chat reply (%r vs %r)" % (r1, expected))
    st = stats(s or "")
    check(len(st) == 1, "--verbose prints tokens/s after the reply (%s)" % st)

    s = send_line("What happened next?")
    st = stats(s or "")
    check(len(st) == 2 and st[1] > st[0] + 12, "second turn's prompt holds the history (%s)" % st)

    s = send_line("/clear")
    check(s and "Cleared the conversation." in s, "/clear")
    s = send_line("Once upon a time")
    st = stats(s or "")
    check(len(st) == 3 and st[2] == st[0], "after /clear the prompt is back to one message (%s)" % st)
    check(reply_after(s or "", "Once upon a time") == expected, "after /clear the reply is the first one again")

    s = send_line("/set temperature 0.5")
    check(s and "Set parameter 'temperature' to '0.5'." in s, "/set temperature")
    s = send_line("/set bogus 1")
    check(s and "Unknown parameter 'bogus'" in s, "/set unknown parameter")
    s = send_line("/set temperature hot")
    check(s and "Invalid value for 'temperature'" in s, "/set bad value")
    s = send_line("/system You are a storyteller.")
    check(s and "Set the system message." in s, "/system")
    s = send_line("/nope")
    check(s and "Unknown command '/nope'" in s, "unknown command")

    n_stats = len(stats(screen()))
    before = prompts(screen())
    tmux("send-keys", "-t", "chat", "-l", '"""First line')
    tmux("send-keys", "-t", "chat", "Enter")
    time.sleep(0.2)
    tmux("send-keys", "-t", "chat", "-l", 'second line"""')
    tmux("send-keys", "-t", "chat", "Enter")
    s = wait_for(lambda x: prompts(x) > before)
    check(s is not None and len(stats(s)) == n_stats + 1, "a \"\"\" multi-line message is one message")

    # Ctrl-C during a long reply
    send_line("/set num_predict 5000")
    send_line("/set temperature 1")
    before = prompts(screen())
    tmux("send-keys", "-t", "chat", "-l", "Tell me a very long story")
    tmux("send-keys", "-t", "chat", "Enter")
    start = screen()
    wait_for(lambda x: len(x) > len(start) + 40, timeout=20)  # some reply text
    tmux("send-keys", "-t", "chat", "C-c")
    s = wait_for(lambda x: prompts(x) > before)
    check(s is not None and "[stopped]" in s, "Ctrl-C stops the reply")
    check(not os.path.exists(status_file), "the chat survives Ctrl-C")
    before = prompts(screen())
    tmux("send-keys", "-t", "chat", "C-c")
    s = wait_for(lambda x: "use /bye or Ctrl-D to exit" in x and prompts(x) > before)
    check(s is not None, "Ctrl-C at the prompt prints a hint")
    send_line("/set num_predict 8")
    s = send_line("Hello")
    check(s is not None, "chat goes on after Ctrl-C")

    tmux("send-keys", "-t", "chat", "-l", "/bye")
    tmux("send-keys", "-t", "chat", "Enter")
    deadline = time.time() + 20
    while time.time() < deadline and not os.path.exists(status_file):
        time.sleep(0.05)
    time.sleep(0.1)
    status = open(status_file).read().strip() if os.path.exists(status_file) else ""
    check(status == "EXITED rc=0", "/bye exits 0 (%r)" % status)

    # piped stdin: one-shot, no conversation
    p = subprocess.run([SPOKE, "run", MODEL, "--chat", "--temp", "0", "-n", "12"], input="Once upon a time",
                       capture_output=True, text=True, env=env, timeout=60)
    check(p.returncode == 0 and p.stdout.strip() == expected and ">>>" not in p.stdout,
          "piped stdin keeps the one-shot behaviour")
finally:
    tmux("kill-server", check_rc=False)
    shutil.rmtree(tmp, ignore_errors=True)

if failures:
    print("test_run_chat: %d check(s) failed" % len(failures))
    sys.exit(1)
print("test_run_chat: all checks passed")
