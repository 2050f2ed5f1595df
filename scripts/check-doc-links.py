#!/usr/bin/env python3
# SPDX-License-Identifier: BSL-1.0
"""Checks that every relative link in the given Markdown files points to a file or directory that exists, and that
a #fragment into a Markdown file names one of its headings (GitHub's anchors). The docs render on GitHub without a
build, so a broken link is the one way they break. Usage: check-doc-links.py FILE.md...; prints the broken links."""
import pathlib
import re
import sys

link = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def anchors(md: pathlib.Path):
    out = set()
    for line in md.read_text(encoding="utf-8").splitlines():
        m = re.match(r"#+\s+(.*)", line)
        if m:
            text = re.sub(r"[`*_]", "", m.group(1)).strip().lower()
            out.add(re.sub(r"[^\w\- ]", "", text).replace(" ", "-"))
    return out


bad = 0
count = 0
for name in sys.argv[1:]:
    path = pathlib.Path(name)
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)  # not inside code blocks
    for target in link.findall(text):
        if re.match(r"[a-z]+:", target):
            continue  # http:, https:, mailto:
        count += 1
        file, _, frag = target.partition("#")
        dest = (path.parent / file).resolve() if file else path.resolve()
        if not dest.exists():
            print(f"{name}: broken link {target} (no {dest})")
            bad += 1
        elif frag and dest.suffix == ".md" and frag not in anchors(dest):
            print(f"{name}: broken link {target} (no heading #{frag} in {dest.name})")
            bad += 1
print(f"check-doc-links: {count} relative links in {len(sys.argv) - 1} files, {bad} broken")
sys.exit(1 if bad else 0)
