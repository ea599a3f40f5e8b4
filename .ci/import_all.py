"""Import every module of the installed wheel's packages; fail on the first that does not import."""

import importlib
import pkgutil
import sys

failed = []
count = 0
for top in ("otel_sysops", "instrumentation", "analyzers"):
    package = importlib.import_module(top)
    if "site-packages" not in (package.__file__ or ""):
        sys.exit(f"{top} imported from {package.__file__}, not from the installed wheel")
    names = [top] + [m.name for m in pkgutil.walk_packages(package.__path__, top + ".")]
    for name in names:
        if name.endswith("__main__"):
            continue
        try:
            importlib.import_module(name)
            count += 1
        except Exception as exc:  # noqa: BLE001 - report every failing module
            failed.append(f"{name}: {type(exc).__name__}: {exc}")
print(f"imported {count} modules from the wheel")
if failed:
    sys.exit("\n".join(failed))
