"""The one build step pyproject.toml cannot declare: the message catalogues (DESIGN.md §11).

The ``.po`` files are the catalogues' source and are committed; their compiled ``.mo`` files are built,
never committed (``.gitignore``). ``scripts/setup.sh`` compiles them in a checkout; this hook compiles them
into every wheel, so an installed OneCard speaks Chinese even when built from a clean copy of the tracked
files.
"""

from __future__ import annotations

from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from setuptools import setup
from setuptools.command.build_py import build_py

# The packages with catalogues: <package>/translations/<locale>/LC_MESSAGES/messages.po
PACKAGES_WITH_CATALOGUES = ("idp", "wallet", "halls", "reader_bridge")


class build_py_with_catalogues(build_py):
    """``build_py``, then each package's ``.po`` compiled to ``.mo`` next to its copy in the build."""

    def run(self) -> None:
        super().run()
        root = Path(__file__).parent
        for package in PACKAGES_WITH_CATALOGUES:
            for source in sorted((root / package).glob("translations/*/LC_MESSAGES/*.po")):
                with source.open("rb") as po:
                    catalogue = read_po(po, locale=source.parent.parent.name)
                target = Path(self.build_lib) / source.relative_to(root).with_suffix(".mo")
                target.parent.mkdir(parents=True, exist_ok=True)
                with target.open("wb") as mo:
                    write_mo(mo, catalogue)


setup(cmdclass={"build_py": build_py_with_catalogues})
