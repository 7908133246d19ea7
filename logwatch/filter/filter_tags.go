package filter

import (
	"regexp"
	"strconv"
	"strings"
)

// fail2ban's address tags, spelled so that RE2 accepts them: fail2ban's
// IPv6 expression ends in (?<=:): — a lookbehind that is always true
// there, because every repetition of the group before it ends in ':' — so
// the plain ':' is the same language without forcing the slow engine on
// every filter.
const (
	reIP4    = `(?:\d{1,3}\.){3}\d{1,3}`
	reIP6    = `(?:[0-9a-fA-F]{1,4}::?|::){1,7}(?:[0-9a-fA-F]{1,4}|:)`
	tagIP4   = `(?:::f{4,6}:)?(?P<ip4>` + reIP4 + `)`
	tagIP6   = `(?P<ip6>` + reIP6 + `)`
	tagDNS   = `(?P<dns>[\w\-.^_]*\w)`
	tagADDR  = `\[?(?:` + tagIP4 + `|` + tagIP6 + `)\]?`
	tagHOST  = `(?:` + tagADDR + `|` + tagDNS + `)`
	tagCIDR  = `(?P<cidr>\d+)`
	tagSUBNT = `\[?(?:` + tagIP4 + `|` + tagIP6 + `)(?:/` + tagCIDR + `)?\]?`
)

var hostTags = map[string]string{
	"IP4": tagIP4, "F-IP4/": tagIP4,
	"IP6": tagIP6, "F-IP6/": tagIP6,
	"ADDR": tagADDR, "F-ADDR/": tagADDR,
	"CIDR": tagCIDR, "F-CIDR/": tagCIDR,
	"SUBNET": tagSUBNT, "F-SUBNET/": tagSUBNT,
	"DNS": tagDNS, "F-DNS/": tagDNS,
	"F-ID/":   `(?P<fid>\S+)`,
	"F-PORT/": `(?P<fport>\w+)`,
}

var (
	ftagRE     = regexp.MustCompile(`</?[\w\-]+/?>`)
	fcustomRE  = regexp.MustCompile(`^(/?)F-([A-Z0-9_\-]+)$`)
	fgroupName = map[string]string{"id": "fid", "port": "fport"}
)

// expandTags replaces fail2ban's tags (<HOST>, <ADDR>, <F-USER>…</F-USER>,
// <SKIPLINES>, …) with Python regex text, as fail2ban's
// Regex._resolveHostTag does. useDNS false makes <HOST> match addresses
// only (fail2ban's usedns=no).
func expandTags(expr string, useDNS bool) string {
	open := map[string]bool{}
	skip := 0
	return ftagRE.ReplaceAllStringFunc(expr, func(tag string) string {
		tn := tag[1 : len(tag)-1]
		switch tn {
		case "HOST":
			if useDNS {
				return tagHOST
			}
			return tagADDR
		case "SKIPLINES":
			s := `\n(?P<skiplines` + strconv.Itoa(skip) + `>(?:(?:.*\n)*?))`
			skip++
			return s
		}
		if r, ok := hostTags[tn]; ok {
			return r
		}
		m := fcustomRE.FindStringSubmatch(tn)
		if m == nil {
			return tag
		}
		name := m[2]
		if m[1] != "" { // closing tag
			if open[name] {
				return ")"
			}
			return tag
		}
		open[name] = true
		name = strings.ToLower(name)
		if g, ok := fgroupName[name]; ok {
			name = g
		}
		// Python allows '-' nowhere in group names either; fail2ban
		// would fail to compile, so would we.
		return "(?P<" + name + ">"
	})
}
