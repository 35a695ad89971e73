#!/usr/bin/python3
"""The layering test: every #include "folder/..." in src/ and tools/ must follow the dependency table
of docs/architecture.md (the fenced block that starts with ```layers). Each line of the table is
`folder: allowed folders`; a folder may include its own headers and those of the folders listed.
Prints every include against the table as file:line and exits 1; also fails on a folder of src/
that the table does not list, and on a table that is not acyclic.

  check_layers.py [REPO]
"""
import os, re, sys

repo = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
doc = os.path.join(repo, "docs", "architecture.md")
text = open(doc).read()
block = re.search(r"^```layers\n(.*?)^```", text, re.S | re.M)
if not block:
    sys.exit(f"{doc}: no ```layers block (the dependency table this test enforces)")
allowed = {}
for number, line in enumerate(block.group(1).splitlines(), 1):
    line = line.split("#")[0].strip()
    if not line:
        continue
    name, _, deps = line.partition(":")
    allowed[name.strip()] = set(deps.split())

problems = []
src_folders = sorted(d for d in os.listdir(os.path.join(repo, "src")) if os.path.isdir(os.path.join(repo, "src", d)))
for folder in src_folders:
    if folder not in allowed:
        problems.append(f"src/{folder}/: not in the layers table of docs/architecture.md (say what it may include)")
for folder, deps in allowed.items():
    for dep in deps:
        if dep not in allowed:
            problems.append(f"docs/architecture.md: layer '{folder}' may include '{dep}', which the table does not list")

# The table itself must be a DAG, so the layers can be read bottom to top.
state = {}
def visit(node, path):
    if state.get(node) == "done":
        return
    if state.get(node) == "open":
        problems.append("docs/architecture.md: the layers table has a cycle: " + " -> ".join(path + [node]))
        return
    state[node] = "open"
    for dep in sorted(allowed.get(node, ())):
        visit(dep, path + [node])
    state[node] = "done"
for node in sorted(allowed):
    visit(node, [])

include = re.compile(r'^\s*#\s*include\s+"([^"/]+)/[^"]+"')
checked = 0
for root, layer_of in (("src", lambda rel: rel.split(os.sep)[1]), ("tools", lambda rel: "tools")):
    for directory, _, files in os.walk(os.path.join(repo, root)):
        for f in sorted(files):
            if not f.endswith((".h", ".cpp", ".cu", ".cuh", ".hpp")):
                continue
            path = os.path.join(directory, f)
            rel = os.path.relpath(path, repo)
            layer = layer_of(rel)
            for number, line in enumerate(open(path, errors="replace"), 1):
                m = include.match(line)
                if not m or not os.path.isdir(os.path.join(repo, "src", m.group(1))):
                    continue
                checked += 1
                target = m.group(1)
                if target != layer and target not in allowed.get(layer, set()):
                    problems.append(f"{rel}:{number}: {layer}/ includes {target}/ ({line.strip()}); "
                                    f"{layer}/ may include: {' '.join(sorted(allowed.get(layer, ()))) or 'nothing'}")
for p in problems:
    print(p)
print(f"{checked} includes checked against {len(allowed)} layers: {len(problems)} problem(s)")
sys.exit(1 if problems else 0)
