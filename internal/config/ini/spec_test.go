package ini

import (
	"reflect"
	"testing"
)

// Expected results are what fail2ban's extractOptions returns.
func TestParseSpec(t *testing.T) {
	cases := []struct {
		in   string
		name string
		args map[string]string
		err  bool
	}{
		{in: "sshd", name: "sshd", args: map[string]string{}},
		{in: "sshd[mode=aggressive]", name: "sshd", args: map[string]string{"mode": "aggressive"}},
		{in: `sshd[mode=aggressive, __pam_auth="pam_ldap"]`, name: "sshd", args: map[string]string{"mode": "aggressive", "__pam_auth": "pam_ldap"}},
		{in: "act[a=1][b=2]", name: "act", args: map[string]string{"a": "1", "b": "2"}},
		{in: `act[a="x,]y", b='q"']`, name: "act", args: map[string]string{"a": "x,]y", "b": `q"`}},
		{in: `mail[to=root@example.org, relay="smtp.example.org:25",]`, name: "mail", args: map[string]string{"to": "root@example.org", "relay": "smtp.example.org:25"}},
		{in: "x[a=1 b=2]", name: "x", args: map[string]string{"a": "1 b=2"}},
		{in: "x[]", name: "x", args: map[string]string{}},
		{in: "x[a=  padded  ]", name: "x", args: map[string]string{"a": "padded"}},
		{in: " sshd [ mode = x ] ", err: true},
		{in: "x[=1]", err: true},
		{in: "x[a=1", err: true},
		{in: "x[a]", err: true},
		{in: `x[a="x" , b=1]`, err: true},
		{in: "x[a=1]]", err: true},
		{in: "[a=1]", err: true},
		{in: "", err: true},
	}
	for _, c := range cases {
		name, args, err := ParseSpec(c.in)
		if c.err {
			if err == nil {
				t.Errorf("ParseSpec(%q) = %q %v, want error", c.in, name, args)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseSpec(%q): %v", c.in, err)
			continue
		}
		if name != c.name || !reflect.DeepEqual(args, c.args) {
			t.Errorf("ParseSpec(%q) = %q %v, want %q %v", c.in, name, args, c.name, c.args)
		}
	}
}

// Expected results are fail2ban's splitWithOptions, trimmed.
func TestSplitSpecs(t *testing.T) {
	cases := []struct {
		in   string
		want []string
	}{
		{"a b", []string{"a", "b"}},
		{"iptables-multiport[port=\"ssh\", protocol=\"tcp\"]\n   sendmail-whois[sender=\"a b\", dest=\"x]\"]",
			[]string{`iptables-multiport[port="ssh", protocol="tcp"]`, `sendmail-whois[sender="a b", dest="x]"]`}},
		{"a[x=1] [y=2] b", []string{"a[x=1] [y=2]", "b"}},
		{"a [x=1]\nb", []string{"a [x=1]", "b"}},
		{"mail[to=a@example.org,\n     relay=b]\nwebhook[url=\"http://192.0.2.1/x y\"]", []string{"mail[to=a@example.org,\n     relay=b]", `webhook[url="http://192.0.2.1/x y"]`}},
		{"  ", nil},
	}
	for _, c := range cases {
		if got := SplitSpecs(c.in); !reflect.DeepEqual(got, c.want) {
			t.Errorf("SplitSpecs(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
