"""Deterministic generator of HR Core's bulk code: the thousands of modules that make its compile slow.

Real applications of this size are mostly generated code (screens, entities, actions); what matters
here is that the same count always gives the same sources, so that builds and benchmarks compare.
"""

from __future__ import annotations

PACKAGE = "hr_core.generated"
MODULES_PER_PACKAGE = 100
ENTITIES = ("employee", "department", "leave", "payslip", "contract", "review", "skill", "team", "site", "asset")


def module_source(index: int) -> str:
    entity = ENTITIES[index % len(ENTITIES)]
    cls = "".join(part.capitalize() for part in entity.split("_")) + f"Screen{index:05d}"
    lines = [
        f'"""Generated screen logic #{index} for {entity} records."""',
        "",
        "from dataclasses import dataclass, field",
        "",
        f"SCREEN_ID = {index}",
        f"ENTITY = {entity!r}",
        f"LABELS = {{'title': 'Screen {index}', 'entity': {entity!r}, 'fields': {index % 7 + 3}}}",
        "",
        "",
        "@dataclass",
        f"class {cls}Row:",
        "    id: int",
        "    name: str",
        "    amount: float = 0.0",
        "    tags: list = field(default_factory=list)",
        "",
        "    def display(self) -> str:",
        "        return f'{self.id}: {self.name} ({self.amount:.2f}) ' + ', '.join(sorted(self.tags))",
        "",
        "",
        f"class {cls}:",
        "    columns = ('id', 'name', 'amount', 'tags')",
        "",
        "    def __init__(self, rows=None):",
        "        self.rows = list(rows or [])",
        "",
    ]
    for method in range(24):
        lines += [
            f"    def action_{method:02d}(self, value, *, limit={method + 1}, scale={(index % 5) + 1}):",
            f'        """Action {method} of screen {index}: filter, transform and summarise rows."""',
            "        selected = [row for row in self.rows if row.amount * scale > value and row.id % limit == 0]",
            "        total = 0.0",
            "        for position, row in enumerate(selected):",
            f"            if position % {method % 4 + 2} == 0 and row.name.startswith(({entity[:2]!r}, 'x')):",
            "                total += row.amount * scale",
            f"            elif row.tags and row.tags[0] in {{'a', 'b', {entity!r}}}:",
            "                total -= len(row.tags) / (position + 1)",
            "            else:",
            "                try:",
            "                    total += int(row.name[-1:] or 0) % limit",
            "                except ValueError:",
            "                    total += 0.5",
            "        summary = {'count': len(selected), 'total': round(total, 2), 'screen': SCREEN_ID}",
            f"        return summary if summary['count'] or value < {method * 3 + index % 11} else None",
            "",
        ]
    lines += [
        "",
        "def build(count=10):",
        f"    rows = [{cls}Row(id=i, name=ENTITY + str(i), amount=i * 1.5, tags=[ENTITY]) for i in range(count)]",
        f"    return {cls}(rows)",
        "",
    ]
    return "\n".join(lines)


def generate_modules(count: int, *, version: str) -> dict[str, str]:
    """``{path under src/: source}`` for ``count`` modules in sub-packages of MODULES_PER_PACKAGE."""
    files: dict[str, str] = {}
    packages = (count + MODULES_PER_PACKAGE - 1) // MODULES_PER_PACKAGE
    files["hr_core/generated/__init__.py"] = (
        f'"""{count} generated screen modules of HR Core {version}."""\n\n'
        f"MODULE_COUNT = {count}\nPACKAGES = {[f'p{n:03d}' for n in range(packages)]!r}\n"
    )
    for index in range(count):
        package = f"p{index // MODULES_PER_PACKAGE:03d}"
        if index % MODULES_PER_PACKAGE == 0:
            files[f"hr_core/generated/{package}/__init__.py"] = f'"""Generated screens {index} and up."""\n'
        files[f"hr_core/generated/{package}/screen_{index:05d}.py"] = module_source(index)
    return files
