"""The code's shape: no module imports one that imports it back, and the README's layout tree names every file."""
import ast, fnmatch, re, subprocess
from conftest import ROOT

def _project_imports(path) -> set[str]:
  """Top-level project modules that `path` imports anywhere (lazy imports inside functions count too)."""
  local = {p.stem for p in ROOT.glob("*.py")}
  found = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import): found |= {a.name.split(".")[0] for a in node.names}
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0: found.add(node.module.split(".")[0])
  return found & local

def test_no_import_circle():
  graph = {p.stem: _project_imports(p) for p in ROOT.glob("*.py")}
  def reach(start):
    seen, todo = set(), list(graph[start])
    while todo:
      m = todo.pop()
      if m not in seen: seen.add(m); todo += graph[m]
    return seen
  circles = [m for m in graph if m in reach(m)]
  assert not circles, {m: graph[m] for m in circles}

def test_the_readme_layout_names_every_tracked_file():
  readme = (ROOT / "README.md").read_text()
  tree = re.search(r"## How the code is laid out.*?```text\n(.*?)```", readme, re.S).group(1)
  tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
  # each file at the top, and each file in a source folder, by name; model folders and data files by their folder
  source = [f for f in tracked if f.endswith((".py", ".js", ".mjs", ".html", ".yml")) and not f.startswith("webapp/mnist_")]
  names = set(re.findall(r"[\w.*/-]+\.(?:py|js|mjs|html|yml)", tree))       # names and patterns such as test_*.py
  missing = [f for f in source if not any(fnmatch.fnmatch(f, n) or fnmatch.fnmatch(f.rsplit("/", 1)[-1], n.rsplit("/", 1)[-1]) for n in names)]
  assert not missing, missing
