#!/usr/bin/env python3
"""Per-kernel resource report of the CUDA build, from ptxas's --resource-usage lines.

sdxl_ptxas_log.sh (the CUDA compiler launcher set by SdxlCudaResources.cmake) saves each .cu object's compile
stderr as <object>.ptxas.txt. This script parses those logs into one table -- kernel (demangled), arch,
registers, static shared memory, stack frame, spill stores, spill loads -- writes it to --out, prints it, and
exits 1 when a kernel spills registers or needs more than 48 KiB of static shared memory (impossible to
launch), naming the kernel and arch.

  sdxl_cuda_resources.py --out build/cuda_resources.txt OBJECT_OR_LOG...   (';'-separated lists allowed;
                                                                             objects not from .cu are skipped)
  sdxl_cuda_resources.py --self-test      (canned logs: a spilling and a 50000 B smem kernel must fail)
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

STATIC_SMEM_LIMIT = 48 * 1024  # bytes: the most static __shared__ a block can have, on every arch

ENTRY = re.compile(r"Compiling entry function '([^']+)' for '([^']+)'")
PROPS = re.compile(r"Function properties for (\S+)")
FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
USED = re.compile(r"Used (\d+) registers")
SMEM = re.compile(r"(\d+) bytes smem")

NOTE = ("smem = static shared memory per block (__shared__ variables) as ptxas reports it. Dynamic shared\n"
        "memory (extern __shared__, sized at launch) is not included: above 48 KiB it needs the\n"
        "cudaFuncSetAttribute opt-in, which the launching code does at run time.\n"
        "Fails on: spill stores or loads > 0, static smem > %d B." % STATIC_SMEM_LIMIT)


class Row:
    def __init__(self, mangled, arch, source, entry=True):
        self.mangled, self.arch, self.source, self.entry = mangled, arch, source, entry
        self.name = mangled
        self.regs = None
        self.smem = 0
        self.stack = self.spill_st = self.spill_ld = 0


def parse_log(text, source):
    """Rows (one per entry function and arch, plus any non-inlined device function ptxas reports)."""
    rows, cur, props_for, arch = [], None, None, "?"
    for line in text.splitlines():
        m = ENTRY.search(line)
        if m:
            arch = m.group(2)
            cur = Row(m.group(1), arch, source)
            rows.append(cur)
            props_for = None
            continue
        m = PROPS.search(line)
        if m:
            name = m.group(1)
            if cur is not None and name == cur.mangled and cur.arch == arch:
                props_for = cur
            else:  # a called (non-inlined) device function, reported after each caller: its spills count too
                props_for = Row(name, arch, source, entry=False)
                rows.append(props_for)
            continue
        m = FRAME.search(line)
        if m and props_for is not None:
            props_for.stack, props_for.spill_st, props_for.spill_ld = (int(g) for g in m.groups())
            props_for = None
            continue
        m = USED.search(line)
        if m and cur is not None and cur.regs is None:
            cur.regs = int(m.group(1))
            s = SMEM.search(line)
            cur.smem = int(s.group(1)) if s else 0
    seen, unique = set(), []  # one row per device function and arch (the same for every caller)
    for r in rows:
        key = (r.entry, r.mangled, r.arch, r.stack, r.spill_st, r.spill_ld) if not r.entry else id(r)
        if key not in seen:
            seen.add(key)
            unique.append(r)
    return unique


def short_name(demangled):
    """'void ns::(anonymous namespace)::k<float, 4>(Params, long)' -> 'ns::k<float, 4>'."""
    s = demangled.replace("(anonymous namespace)::", "")
    if s.startswith("void "):
        s = s[5:]
    if s.endswith(")"):  # drop the parameter list: the '(' that closes at the end, outside any <...>
        depth = 0
        for i in range(len(s) - 1, -1, -1):
            depth += {")": 1, "(": -1}.get(s[i], 0)
            if depth == 0:
                s = s[:i]
                break
    return s


def demangle(rows):
    names = sorted({r.mangled for r in rows})
    if not names or shutil.which("c++filt") is None:
        return
    out = subprocess.run(["c++filt"], input="\n".join(names) + "\n", capture_output=True, text=True).stdout
    lines = out.splitlines()
    if len(lines) != len(names):
        return
    table = dict(zip(names, lines))
    for r in rows:
        r.name = short_name(table[r.mangled])


def problems(rows):
    out = []
    for r in rows:
        what = []
        if r.spill_st or r.spill_ld:
            what.append("spills (%d B stores, %d B loads)" % (r.spill_st, r.spill_ld))
        if r.smem > STATIC_SMEM_LIMIT:
            what.append("%d B static shared memory > %d B" % (r.smem, STATIC_SMEM_LIMIT))
        if what:
            out.append("%s [%s, %s]: %s" % (r.name, r.arch, r.source, "; ".join(what)))
    return out


def format_table(rows):
    head = ("kernel", "arch", "regs", "smem B", "stack B", "spill st B", "spill ld B", "source")
    body = [(r.name if r.entry else r.name + " (device function)", r.arch, "-" if r.regs is None else str(r.regs),
             str(r.smem), str(r.stack), str(r.spill_st), str(r.spill_ld), r.source) for r in rows]
    widths = [max(len(x[i]) for x in [head] + body) for i in range(len(head))]
    fmt = lambda x: "  ".join(c.ljust(w) if i in (0, 1, 7) else c.rjust(w)
                              for i, (c, w) in enumerate(zip(x, widths))).rstrip()
    return "\n".join([fmt(head), fmt(["-" * w for w in widths])] + [fmt(x) for x in body])


def check(paths, out_path):
    """Returns (exit code, report text)."""
    logs, missing = [], []
    for arg in paths:
        for p in filter(None, arg.split(";")):
            if p.endswith(".ptxas.txt"):
                logs.append(p)
            elif re.search(r"\.cu\.(o|obj)$", p):
                (logs if os.path.exists(p + ".ptxas.txt") else missing).append(p + ".ptxas.txt")
    rows = []
    for log in logs:
        source = re.sub(r"\.(o|obj)\.ptxas\.txt$|\.ptxas\.txt$", "", os.path.basename(log))
        with open(log, encoding="utf-8", errors="replace") as f:
            rows += parse_log(f.read(), source)
    demangle(rows)
    rows.sort(key=lambda r: (r.source, r.name, r.arch))
    errors = problems(rows)
    errors += ["no ptxas report for %s (rebuild: the CUDA compiler launcher writes it)" % m for m in missing]
    if not any(r.entry for r in rows):
        errors.append("no kernel found in %d ptxas log(s): is --resource-usage set?" % len(logs))
    text = "CUDA kernel resources (ptxas --resource-usage), %d kernel x arch rows\n%s\n\n%s\n" % (
        sum(r.entry for r in rows), NOTE, format_table(rows))
    text += ("\nFAILED:\n  " + "\n  ".join(errors) + "\n") if errors else "\nOK: no spills, static smem <= limit\n"
    if out_path:
        with open(out_path, "w", encoding="utf-8") as f:
            f.write(text)
    return (1 if errors else 0), text


CLEAN_LOG = """ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function '_ZN4sdxl4cuda12_GLOBAL__N_16kernelILi4EEEvPfl' for 'sm_80'
ptxas info    : Function properties for _ZN4sdxl4cuda12_GLOBAL__N_16kernelILi4EEEvPfl
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 40 registers, used 1 barriers, 41216 bytes smem, 568 bytes cmem[0]
ptxas info    : Compile time = 1.0 ms
ptxas info    : Compiling entry function '_Z4fillPfi' for 'sm_90'
ptxas info    : Function properties for _Z4fillPfi
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 8 registers, 368 bytes cmem[0]
"""

BAD_LOG = """ptxas info    : Compiling entry function '_Z7spillerPf' for 'sm_80'
ptxas info    : Function properties for _Z7spillerPf
    16 bytes stack frame, 24 bytes spill stores, 72 bytes spill loads
ptxas info    : Used 64 registers, used 1 barriers, 16 bytes cumulative stack size, 16 bytes smem, 568 bytes cmem[0]
ptxas info    : Compiling entry function '_Z7bigsmemPf' for 'sm_90'
ptxas info    : Function properties for _Z7bigsmemPf
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 32 registers, used 1 barriers, 50000 bytes smem
"""


def self_test():
    ok = True

    def expect(cond, what):
        nonlocal ok
        print(("ok   " if cond else "FAIL ") + what)
        ok = ok and cond

    with tempfile.TemporaryDirectory() as d:
        clean, bad = os.path.join(d, "clean.cu.o"), os.path.join(d, "bad.cu.o")
        for obj, text in ((clean, CLEAN_LOG), (bad, BAD_LOG)):
            open(obj, "w").close()
            with open(obj + ".ptxas.txt", "w") as f:
                f.write(text)
        rc, text = check([clean], os.path.join(d, "clean.txt"))
        expect(rc == 0, "clean log passes")
        expect("41216" in text and " 8 " in text and "sm_90" in text, "clean log: smem 41216 and 8 registers parsed")
        if shutil.which("c++filt"):
            expect("sdxl::cuda::kernel<4>" in text, "demangled, anonymous namespace and parameters dropped")
        rc, text = check([clean + ";" + bad], None)
        expect(rc == 1, "spilling + 50000 B smem log fails")
        expect(re.search(r"spiller\S* \[sm_80, bad\.cu\]: spills \(24 B stores, 72 B loads\)", text) is not None,
               "the spilling kernel is named with its arch")
        expect(re.search(r"bigsmem\S* \[sm_90, bad\.cu\]: 50000 B static shared memory", text) is not None,
               "the 50000 B smem kernel is named with its arch")
        rc, text = check([os.path.join(d, "absent.cu.o"), os.path.join(d, "x.cpp.o")], None)
        expect(rc == 1 and "no ptxas report for" in text, "a .cu object without a log fails (.cpp skipped)")
        with open(os.path.join(d, "empty.ptxas.txt"), "w") as f:
            f.write("nvcc warning : nothing\n")
        rc, text = check([os.path.join(d, "empty.ptxas.txt")], None)
        expect(rc == 1 and "no kernel found" in text, "logs without any kernel fail")
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="where to write the table")
    ap.add_argument("--self-test", action="store_true")
    ap.add_argument("paths", nargs="*", help="CUDA objects (their <object>.ptxas.txt is read) or .ptxas.txt logs")
    a = ap.parse_args()
    if a.self_test:
        return self_test()
    rc, text = check(a.paths, a.out)
    print(text, end="")
    return rc


if __name__ == "__main__":
    sys.exit(main())
