#!/usr/bin/env python3
"""Checks that every external command the project's tests, benchmarks and
scripts run comes from a package that scripts/install-deps.sh installs.

A machine that earlier work has changed can hold a tool no install step
names; tests pass there and fail on a new machine. This finds such tools
statically, so `make test` fails on the machine that hides the gap, with a
message naming the command, where it is used and what to do.

What counts as a command run on this machine:
  - shell (*.sh, files with a sh/bash shebang, Makefile recipes): the first
    word of every simple command, including those in $(...), `...`, after
    wrappers such as `timeout`, `nice`, `env`, `sudo`, `flock`, `unshare`;
    words after `chroot`/`ssh` run elsewhere and are not counted;
  - Python: the literal program of subprocess.* / os.exec* / shutil.which;
  - C++: the literal program of run({"prog", ...}) / execvp / execlp, and
    the shell text of system(), popen(), run_quiet(), shell_output() and
    `cmd = "..."`.
Words that are builtins, keywords, functions defined in the scanned files,
paths, or expansions are not commands of the system.

A command passes when its file belongs to a package that the install lists
name, that one of those depends on (transitively), or that every Debian
system has (Essential or Priority: required, as debootstrap's minbase).

usage: check-tools.py [-v] [ROOT]     -v lists every command and its package
exit: 0 all provided, 1 some command is missing or comes from an unnamed package
"""
import os
import re
import shutil
import subprocess
import sys

SCAN_DIRS = ["tests", "bench", "scripts", "kernel", "fuzz", ".ci"]
# The runtime's own code: only its argv-form launches are read (its strings
# are mostly guest command lines, not host shell).
RUNTIME_DIRS = ["src"]
EXTRA_FILES = ["Makefile"]
SKIP_DIRS = {"build", "__pycache__"}

SHELL_RESERVED = {
    "if", "then", "else", "elif", "fi", "case", "esac", "for", "select", "while", "until", "do",
    "done", "in", "function", "time", "{", "}", "!", "[[", "]]", "coproc",
}
# Commands whose arguments start another command on this machine. Their
# options (and for some, one operand) come before it.
WRAPPERS = {
    "sudo": 0, "nice": 0, "ionice": 0, "nohup": 0, "setsid": 0, "stdbuf": 0, "env": 0,
    "timeout": 1, "flock": 1, "unshare": 0, "xargs": 0, "taskset": 1, "command": 0,
    "exec": 0, "builtin": 0, "eval": 0, "time": 0, "strace": 0, "watch": 0,
}
# Options of wrappers that take a separate value.
WRAPPER_VALUE_OPTS = {"-n", "-c", "-s", "-k", "-u", "-E", "-I", "-P", "-L", "-d", "-w", "-o", "-e",
                      "--signal", "--kill-after", "--adjustment", "--unset", "--chdir",
                      "--propagation", "--setgroups", "--map-user", "--map-group", "-C"}
# The command after these runs in another root or on another machine.
ELSEWHERE = {"chroot", "ssh", "nsenter", "systemd-nspawn"}
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
# Commands the project builds itself.
PROJECT_COMMANDS = {"moat", "moat-shim", "moat-agent", "moat-mkerofs"}


class ShellScanner:
    """Finds the first word of every simple command in shell text. Quotes,
    expansions, here-documents, case patterns and redirections are
    understood well enough to keep their contents out of command position."""

    def __init__(self, text):
        self.s = text
        self.i = 0
        self.line = 1
        self.commands = []  # (word, line)
        self.heredocs = []  # pending terminators, read after the next newline
        self.case_patterns = False

    def scan(self):
        self.parse_list(end=None)
        return self.commands

    def peek(self, k=0):
        j = self.i + k
        return self.s[j] if j < len(self.s) else "\0"  # never `in` a set of characters

    def advance(self, n=1):
        for _ in range(n):
            if self.i < len(self.s) and self.s[self.i] == "\n":
                self.line += 1
            self.i += 1

    def emit(self, words):
        """Records the command word of one simple command (a list of
        (text, literal) pairs)."""
        k = 0
        pending_operands = 0
        while k < len(words):
            text, literal = words[k]
            if not literal:
                return
            if pending_operands == 0 and re.match(r"^[A-Za-z_][A-Za-z0-9_]*(\[[^]]*\])?\+?=", text):
                k += 1  # assignment before the command
                continue
            if text in ("for", "select"):
                return  # `for NAME in WORDS`: no command until `do`
            if text in SHELL_RESERVED:
                k += 1
                continue
            if text.startswith("-") or pending_operands > 0:
                if text in WRAPPER_VALUE_OPTS:
                    k += 1
                elif not text.startswith("-"):
                    pending_operands -= 1
                k += 1
                continue
            if not NAME.match(text):
                return
            self.commands.append((text, self.line))
            if text in ELSEWHERE:
                return
            if text in WRAPPERS:
                pending_operands = WRAPPERS[text]
                k += 1
                continue
            return

    def skip_to_newline(self):
        while self.i < len(self.s) and self.s[self.i] != "\n":
            self.i += 1

    def read_heredocs(self):
        """Skips the bodies of the here-documents opened on the line that
        just ended (the current character is that newline)."""
        for term, strip_tabs in self.heredocs:
            while self.i < len(self.s):
                self.advance()  # the newline before this body line
                start = self.i
                self.skip_to_newline()
                body_line = self.s[start:self.i]
                if (body_line.lstrip("\t") if strip_tabs else body_line) == term:
                    break
        self.heredocs = []

    def parse_list(self, end):
        words = []

        def flush():
            nonlocal words
            if words:
                if self.case_patterns:
                    pass  # patterns of a case item are not commands
                else:
                    self.emit(words)
                    if words[0][0] == "case":
                        self.case_patterns = True
            words = []

        while self.i < len(self.s):
            c = self.peek()
            if end is not None and self.s.startswith(end, self.i):
                self.advance(len(end))
                flush()
                return
            if c in " \t\r":
                self.advance()
            elif c == "\\" and self.peek(1) == "\n":
                self.advance(2)
            elif c == "\n":
                flush()
                if self.heredocs:
                    self.read_heredocs()
                self.advance()
            elif c == "#" and not words:
                self.skip_to_newline()
            elif c == ";":
                flush()
                if self.peek(1) == ";" or self.peek(1) == "&":
                    self.case_patterns = True
                    self.advance(2)
                    if self.peek() == "&":
                        self.advance()
                else:
                    self.advance()
            elif c in "&|":
                flush()
                self.advance(2 if self.peek(1) in "&|" else 1)
            elif c == "(":
                if self.peek(1) == "(":
                    self.skip_balanced("((", "))")
                    flush()
                elif words and len(words) == 1 and self.s[self.i:self.i + 2] == "()":
                    words = []  # a function definition: its name is not run here
                    self.advance(2)
                else:
                    flush()
                    self.advance()
            elif c == ")":
                if self.case_patterns:
                    words = []
                    self.case_patterns = False
                else:
                    flush()
                self.advance()
            elif c in "<>":
                self.read_redirection()
            else:
                text, literal = self.read_word()
                if text.endswith("=") and literal and self.peek() == "(":
                    self.skip_balanced("(", ")")  # an array assignment: words, not commands
                    words.append((text, literal))
                    continue
                if text == "esac" and not words:
                    self.case_patterns = False
                    continue
                if (text.isdigit() and self.peek() in "<>"):
                    self.read_redirection()
                    continue
                words.append((text, literal))
                if self.case_patterns:
                    continue
                if words[0][0] == "case" and text == "in" and len(words) > 2:
                    flush()
        flush()

    def read_redirection(self):
        if self.s.startswith("<<<", self.i):
            self.advance(3)
        elif self.s.startswith("<<", self.i):
            self.advance(2)
            strip_tabs = self.peek() == "-"
            if strip_tabs:
                self.advance()
            while self.peek() in " \t":
                self.advance()
            term, _ = self.read_word()
            self.heredocs.append((term.strip("'\""), strip_tabs))
            return
        else:
            while self.peek() in "<>&|":
                self.advance()
        while self.peek() in " \t":
            self.advance()
        if self.i < len(self.s) and self.peek() not in "\n;&|()":
            self.read_word()  # the target, not a command

    def skip_balanced(self, opener, closer):
        depth = 0
        while self.i < len(self.s):
            if self.s.startswith(opener, self.i):
                depth += 1
                self.advance(len(opener))
            elif self.s.startswith(closer, self.i):
                depth -= 1
                self.advance(len(closer))
                if depth == 0:
                    return
            else:
                self.advance()

    def read_expansion(self):
        """At '$': skips or scans the expansion; returns False if it is a
        plain character."""
        nxt = self.peek(1)
        if self.s.startswith("$((", self.i):
            self.advance(1)
            self.skip_balanced("((", "))")
        elif nxt == "(":
            self.advance(2)
            saved = self.case_patterns
            self.case_patterns = False
            self.parse_list(end=")")
            self.case_patterns = saved
        elif nxt == "{":
            self.advance(1)
            self.skip_balanced("{", "}")
        else:
            self.advance()
            while self.peek().isalnum() or self.peek() in "_@*#?$!-":
                single = not self.s[self.i - 1].isalnum() and self.s[self.i - 1] != "_"
                self.advance()
                if single and self.s[self.i - 1] in "@*#?$!-":
                    break
        return True

    def read_word(self):
        text = []
        literal = True
        while self.i < len(self.s):
            c = self.peek()
            if c in " \t\r\n;&|()<>":
                break
            if c == "\\":
                if self.peek(1) == "\n":
                    self.advance(2)
                    continue
                text.append(self.peek(1))
                self.advance(2)
            elif c == "'":
                literal = False
                self.advance()
                while self.i < len(self.s) and self.peek() != "'":
                    text.append(self.peek())
                    self.advance()
                self.advance()
            elif c == '"':
                literal = False
                self.advance()
                while self.i < len(self.s) and self.peek() != '"':
                    if self.peek() == "\\":
                        text.append(self.peek(1))
                        self.advance(2)
                    elif self.peek() == "$":
                        self.read_expansion()
                    elif self.peek() == "`":
                        self.advance()
                        self.parse_list(end="`")
                    else:
                        text.append(self.peek())
                        self.advance()
                self.advance()
            elif c == "$":
                literal = False
                self.read_expansion()
            elif c == "`":
                literal = False
                self.advance()
                self.parse_list(end="`")
            else:
                text.append(c)
                self.advance()
        return "".join(text), literal


def shell_commands(text):
    return ShellScanner(text).scan()


def shell_functions(text):
    return set(re.findall(r"(?m)^\s*(?:function\s+)?([A-Za-z_][\w-]*)\s*\(\s*\)", text))


CPP_STRING = re.compile(r'"((?:[^"\\\n]|\\.)*)"')
CPP_ARGV_CALL = re.compile(r'\b(?:run|execvp|execlp|run_capture|run_command)\(\s*\{?\s*"([A-Za-z0-9][\w.+-]*)"')
CPP_SHELL_CALL = re.compile(r'\b(?:system|popen|run_quiet|shell_output|sh)\(|\bcmd\s*[+]?=')
PY_CALL = re.compile(
    r'\b(?:subprocess\.(?:run|call|check_call|check_output|Popen)|os\.exec\w+|shutil\.which)'
    r'\(\s*\[?\s*["\']([A-Za-z0-9][\w.+-]*)["\']')


def cpp_unescape(s):
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), s)


def cpp_statement(text, start):
    """The text from `start` to the end of its statement (the next ';' outside
    string literals)."""
    i = start
    while i < len(text):
        c = text[i]
        if c == '"':
            m = CPP_STRING.match(text, i)
            i = m.end() if m else i + 1
        elif c == ";":
            return text[start:i]
        else:
            i += 1
    return text[start:]


def cpp_first_argument(stmt):
    """`stmt` up to its first comma outside parentheses and string literals
    (popen's mode is not shell)."""
    depth, i = 0, 0
    while i < len(stmt):
        c = stmt[i]
        if c == '"':
            m = CPP_STRING.match(stmt, i)
            i = m.end() if m else i + 1
            continue
        if c in "({[":
            depth += 1
        elif c in ")}]":
            depth -= 1
        elif c == "," and depth <= 0:
            return stmt[:i]
        i += 1
    return stmt


def cpp_shell_text(expr):
    """The shell text a C++ string expression builds: its literals in order,
    adjacent ones joined, and "$EXPR" for each computed part between them
    (a path or a quoted value: never a command of the system)."""
    out, end = [], None
    for m in CPP_STRING.finditer(expr):
        if end is not None and expr[end:m.start()].strip():
            out.append("$EXPR")
        out.append(cpp_unescape(m.group(1)))
        end = m.end()
    return "".join(out)


def cpp_commands(text, shell_text=True):
    found = []
    for m in CPP_ARGV_CALL.finditer(text):
        found.append((m.group(1), text.count("\n", 0, m.start()) + 1))
    if not shell_text:
        return found
    for m in CPP_SHELL_CALL.finditer(text):
        shell = cpp_shell_text(cpp_first_argument(cpp_statement(text, m.end())))
        if not shell:
            continue
        line = text.count("\n", 0, m.start()) + 1
        found += [(w, line) for w, _ in shell_commands(shell)]
    return found


def makefile_recipes(text):
    """The shell of a Makefile's recipes; make's own $(VAR) become a word."""
    lines = []
    for raw in text.splitlines():
        if raw.startswith("\t"):
            line = raw.lstrip("\t").lstrip("@-").replace("$$", "\0")
            line = re.sub(r"\$[({]\w+[)}]", "MAKEVAR", line).replace("\0", "$")
            lines.append(line)
        else:
            lines.append("")
    return "\n".join(lines)


def is_shell_file(path, head):
    if path.endswith(".sh"):
        return True
    return head.startswith("#!") and re.search(r"\b(ba)?sh\b", head.splitlines()[0]) is not None


def scan_tree(root):
    uses = {}  # command -> [(file, line)]
    functions = set()
    texts = []
    for d in SCAN_DIRS + RUNTIME_DIRS:
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, d)):
            dirnames[:] = [x for x in dirnames if x not in SKIP_DIRS and not x.startswith("build")]
            for f in sorted(filenames):
                texts.append(os.path.join(dirpath, f))
    runtime = tuple(os.path.join(root, d) + os.sep for d in RUNTIME_DIRS)
    texts += [os.path.join(root, f) for f in EXTRA_FILES if os.path.exists(os.path.join(root, f))]
    for path in texts:
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                text = fh.read()
        except OSError:
            continue
        rel = os.path.relpath(path, root)
        name = os.path.basename(path)
        if name == "Makefile":
            found = shell_commands(makefile_recipes(text))
        elif is_shell_file(path, text[:200]):
            functions |= shell_functions(text)
            found = shell_commands(text)
        elif path.endswith(".py"):
            found = [(m.group(1), text.count("\n", 0, m.start()) + 1) for m in PY_CALL.finditer(text)]
        elif path.endswith((".cpp", ".h")):
            found = cpp_commands(text, shell_text=not path.startswith(runtime))
        else:
            continue
        for word, line in found:
            uses.setdefault(word, []).append(f"{rel}:{line}")
    builtins = set(subprocess.run(["bash", "-c", "compgen -b; compgen -k"], capture_output=True,
                                  text=True).stdout.split())
    for word in list(uses):
        if word in builtins or word in functions or word in PROJECT_COMMANDS or word in SHELL_RESERVED:
            del uses[word]
    return uses


def install_list(root):
    out = subprocess.run([os.path.join(root, "scripts", "install-deps.sh"), "--list"],
                         capture_output=True, text=True, check=True).stdout
    return set(out.split())


def installed_packages():
    """name -> (essential_or_required, [dependency names], [provided names])"""
    fmt = "${Package}\t${Status}\t${Essential}\t${Priority}\t${Pre-Depends}\t${Depends}\t${Provides}\n"
    out = subprocess.run(["dpkg-query", "-W", "-f", fmt], capture_output=True, text=True).stdout
    pkgs = {}
    for row in out.splitlines():
        cols = row.split("\t")
        if len(cols) != 7 or not cols[1].endswith(" installed"):
            continue
        name, _, essential, priority, pre, dep, provides = cols

        def names(field):
            return [re.split(r"[\s(:]", alt.strip())[0]
                    for item in field.split(",") for alt in item.split("|") if alt.strip()]

        pkgs[name] = (essential == "yes" or priority == "required", names(pre) + names(dep), names(provides))
    return pkgs


def closure(roots, pkgs):
    providers = {}
    for name, (_, _, provides) in pkgs.items():
        for p in provides:
            providers.setdefault(p, []).append(name)
    seen, todo = set(), list(roots)
    while todo:
        p = todo.pop()
        for real in [p] + providers.get(p, []):
            if real in seen or real not in pkgs:
                continue
            seen.add(real)
            todo += pkgs[real][1]
    return seen


def file_owners():
    """path -> set of packages, from dpkg's file lists (one read, not a
    dpkg-query per command)."""
    owners = {}
    info = "/var/lib/dpkg/info"
    for f in os.listdir(info):
        if not f.endswith(".list"):
            continue
        pkg = f[:-5].split(":")[0]
        with open(os.path.join(info, f), encoding="utf-8", errors="replace") as fh:
            for line in fh:
                owners.setdefault(line.rstrip("\n"), set()).add(pkg)
    return owners


def owning_packages(path, owners_of):
    candidates = {path, os.path.realpath(path)}
    for c in list(candidates):
        for a, b in (("/usr/bin/", "/bin/"), ("/usr/sbin/", "/sbin/")):
            if c.startswith(a):
                candidates.add(b + c[len(a):])
            elif c.startswith(b):
                candidates.add(a + c[len(b):])
    owners = set()
    for c in candidates:
        owners |= owners_of.get(c, set())
    return owners


def main():
    args = [a for a in sys.argv[1:] if a != "-v"]
    verbose = "-v" in sys.argv[1:]
    root = os.path.abspath(args[0] if args else os.path.join(os.path.dirname(__file__), ".."))
    uses = scan_tree(root)
    named = install_list(root)
    pkgs = installed_packages()
    provided = closure(named, pkgs)
    owners_of = file_owners()
    # A new machine's PATH: tools this one has elsewhere (pyenv, ~/.cargo) do
    # not count.
    search = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    problems = []
    for cmd in sorted(uses):
        where = ", ".join(uses[cmd][:3]) + (" ..." if len(uses[cmd]) > 3 else "")
        path = shutil.which(cmd, path=search)
        if path is None:
            problems.append(f"'{cmd}' is not installed (used in {where}): add the package that "
                            f"provides it to scripts/install-deps.sh or a scripts/packages-*.txt")
            continue
        owners = owning_packages(path, owners_of)
        ok = [p for p in owners if p in provided or pkgs.get(p, (False,))[0]]
        if verbose:
            print(f"{cmd:24} {path:40} {','.join(sorted(owners)) or '-'}")
        if not owners:
            problems.append(f"'{cmd}' ({path}, used in {where}) belongs to no Debian package: "
                            f"install it from one the install lists name")
        elif not ok:
            problems.append(f"'{cmd}' ({path}, used in {where}) comes from {', '.join(sorted(owners))}, "
                            f"which scripts/install-deps.sh and scripts/packages-*.txt do not name")
    for p in problems:
        print(f"check-tools: {p}", file=sys.stderr)
    print(f"check-tools: {len(uses)} commands checked, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
