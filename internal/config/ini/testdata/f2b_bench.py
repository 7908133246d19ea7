# Times fail2ban's own reader on BASE/NAME: read + interpolate every value,
# N times in one process; prints nanoseconds per iteration.
import sys
import time

from fail2ban.client.configreader import ConfigReader

base, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
start = time.perf_counter_ns()
for _ in range(n):
    c = ConfigReader(basedir=base)
    c.read(name)
    for s in c.sections():
        for o in c.options(s, True):
            try:
                c.get(s, o)
            except Exception:
                pass
print((time.perf_counter_ns() - start) // n)
