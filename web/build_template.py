"""Build web/dvc_plots.html, the HTML template of `dvc plots show` / `dvc plots diff`, with the vendored
Vega scripts inlined, so that the page draws with no network and wherever it is copied.

    python web/build_template.py           write web/dvc_plots.html from web/vendor/
    python web/build_template.py --check   exit 1 if web/dvc_plots.html is not what the vendored files give
    python web/build_template.py --fetch   first replace web/vendor/ with the versions pinned in web/package.json
                                           (npm pack from the registry), print their sha256, then write

DVC fills the template by plain text replacement of ``{plot_divs}`` (the charts), ``{refresh_tag}`` and
``{scripts}``; this template leaves out ``{scripts}``, which is where DVC would put its CDN <script> tags.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

WEB = Path(__file__).resolve().parent
VENDOR = WEB / "vendor"
TEMPLATE = WEB / "dvc_plots.html"

# vega-embed needs vega and vega-lite defined first
ORDER = ("vega", "vega-lite", "vega-embed")

PAGE = """<!DOCTYPE html>
<html>
<head>
    <meta charset="utf-8">
    {refresh_tag}
    <title>DVC Plot</title>
    <!-- Vega, Vega-Lite and Vega-Embed inlined from web/vendor/ (see its README.md for versions and licences),
         in place of DVC's CDN scripts, so that the page needs no network. Built by web/build_template.py. -->
@SCRIPTS@
    <style>
        table {
            border-spacing: 15px;
        }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""

# strings that would break the page once inlined: the end of the <script> element, or a DVC placeholder
FORBIDDEN = ("</script", "<!--", "{plot_divs}", "{scripts}", "{refresh_tag}")


def pins() -> dict[str, str]:
    """The pinned version of each package, from web/package.json."""
    deps = json.loads((WEB / "package.json").read_text())["dependencies"]
    assert set(deps) == set(ORDER), f"web/package.json should pin exactly {ORDER}, not {sorted(deps)}"
    return deps


def script_path(name: str, version: str) -> Path:
    return VENDOR / f"{name}@{version}" / f"{name}.min.js"


def inline(name: str, version: str) -> str:
    code = script_path(name, version).read_text(encoding="utf-8")
    # the source map is not vendored; the comment would only make developer tools look for it
    code = "\n".join(line for line in code.splitlines() if not line.startswith("//# sourceMappingURL="))
    for bad in FORBIDDEN:
        if bad in code.lower():
            raise SystemExit(f"{name}@{version}: {bad!r} in the script; it cannot be inlined as it is")
    return f"    <!-- {name}@{version} -->\n    <script>{code}</script>"


def render() -> str:
    versions = pins()
    return PAGE.replace("@SCRIPTS@", "\n".join(inline(name, versions[name]) for name in ORDER))


def fetch() -> None:
    """Replace web/vendor/<name>@<version>/ by the minified build and LICENSE of each pinned tarball."""
    with tempfile.TemporaryDirectory() as tmp:
        for name, version in pins().items():
            spec = f"{name}@{version}"
            out = subprocess.run(
                ["npm", "pack", spec, "--json", "--pack-destination", tmp], check=True, capture_output=True, text=True
            )
            tarball = Path(tmp) / json.loads(out.stdout)[0]["filename"]
            digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
            target = VENDOR / spec
            olds = sorted(VENDOR.glob(f"{name}@*"))
            old_license = next(((d / "LICENSE").read_bytes() for d in olds if (d / "LICENSE").exists()), None)
            for old in olds:
                shutil.rmtree(old)
            target.mkdir(parents=True)
            with tarfile.open(tarball) as tar:
                members = {m.name: m for m in tar.getmembers()}
                for member, dest in (
                    (f"package/build/{name}.min.js", f"{name}.min.js"),
                    ("package/LICENSE", "LICENSE"),
                ):
                    if member in members:
                        (target / dest).write_bytes(tar.extractfile(members[member]).read())
            if not (target / "LICENSE").exists():
                # vega's tarball has no LICENSE: it is the one at the root of github.com/vega/vega, at the release tag
                if old_license is None:
                    raise SystemExit(f"{spec}: no LICENSE in the tarball; copy it from the package's repository")
                (target / "LICENSE").write_bytes(old_license)
                print(f"{spec}: no LICENSE in the tarball, kept the previous one: check it against the release tag")
            print(f"{spec}  {tarball.name}  sha256 {digest}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check that web/dvc_plots.html is up to date")
    parser.add_argument("--fetch", action="store_true", help="refresh web/vendor/ from the npm registry first")
    args = parser.parse_args()
    if args.fetch:
        fetch()
    page = render()
    if args.check:
        if not TEMPLATE.exists() or TEMPLATE.read_text(encoding="utf-8") != page:
            print(f"{TEMPLATE} is out of date: run python web/build_template.py", file=sys.stderr)
            return 1
        return 0
    TEMPLATE.write_text(page, encoding="utf-8")
    print(f"wrote {TEMPLATE} ({len(page.encode()) // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
