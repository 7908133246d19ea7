# Dumps every interpolated value fail2ban's own reader gives for the named
# configs under a base directory, as JSON {name: {"section\tkey": value}}.
# Used by TestDifferentialFail2ban and TestDifferentialTrees; "ERR" marks a
# value fail2ban cannot interpolate, "PARSEERR" a config it refuses.
import json
import sys

from fail2ban.client.configreader import ConfigReader

base, names = sys.argv[1], sys.argv[2:]
out = {}
for name in names:
    c = ConfigReader(basedir=base)
    try:
        c.read(name)
    except Exception:
        out[name] = "PARSEERR"
        continue
    d = {}
    for s in c.sections():
        for o in c.options(s, True):
            try:
                v = c.get(s, o)
            except Exception:
                v = "ERR"
            d[s + "\t" + o] = v
    out[name] = d
json.dump(out, sys.stdout)
