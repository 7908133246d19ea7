# Reads each file given with fail2ban's own reader (one file, no
# includes) and dumps {file: {"section\tkey": value}} or {file: "PARSEERR"}.
# Used by TestDifferentialRandom.
import json
import sys

from fail2ban.client.configparserinc import SafeConfigParserWithIncludes

out = {}
for path in sys.argv[1:]:
    c = SafeConfigParserWithIncludes()
    try:
        c.read(path, get_includes=False)
    except Exception:
        out[path] = "PARSEERR"
        continue
    d = {}
    for s in c.sections():
        for o in c.options(s, True):
            try:
                v = c.get(s, o)
            except Exception:
                v = "ERR"
            d[s + "\t" + o] = v
    out[path] = d
json.dump(out, sys.stdout)
