package actions

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/xdpban/xdpban/internal/config"
)

// Action is one configured notification.
type Action interface {
	// Kind is "mail", "webhook" or "command".
	Kind() string
	// Runs reports whether the action wants events of kind k.
	Runs(k Kind) bool
	// Run performs one attempt; ctx carries the per-attempt timeout.
	Run(ctx context.Context, ev Event) error
	// limits is the timeout and retry count the Runner applies.
	limits() policy
}

// ErrPermanent marks a failure that retrying cannot fix (a 4xx from a
// webhook, a rejected recipient): the Runner does not retry it.
var ErrPermanent = errors.New("permanent failure")

// ErrBadOption is wrapped by every validation error of Build.
var ErrBadOption = errors.New("bad action option")

type policy struct {
	on      map[Kind]bool
	timeout time.Duration
	retries int
}

func (p policy) Runs(k Kind) bool { return p.on[k] }
func (p policy) limits() policy   { return p }

// Kinds lists the action kinds Build knows.
var Kinds = []string{"command", "mail", "webhook"}

// Build validates a jail's actions and returns them in order. The error is
// one line naming the action, the option and what to write instead.
func Build(jailActions []config.Action) ([]Action, error) {
	out := make([]Action, 0, len(jailActions))
	for i, ca := range jailActions {
		a, err := build(ca)
		if err != nil {
			return nil, fmt.Errorf("action %d (%s): %w", i+1, ca.Kind, err)
		}
		out = append(out, a)
	}
	return out, nil
}

func build(ca config.Action) (Action, error) {
	o := opts{m: ca.Options, used: map[string]bool{}}
	var (
		a   Action
		err error
	)
	switch strings.ToLower(strings.TrimSpace(ca.Kind)) {
	case "mail":
		a, err = newMail(&o)
	case "webhook":
		a, err = newWebhook(&o)
	case "command":
		a, err = newCommand(&o)
	default:
		return nil, fmt.Errorf("%w: unknown action %q: use one of %s", ErrBadOption, ca.Kind, strings.Join(Kinds, ", "))
	}
	if err != nil {
		return nil, err
	}
	if err := o.unknown(); err != nil {
		return nil, err
	}
	return a, nil
}

// opts reads an action's options, remembering which were used so that a
// misspelt one is reported instead of silently ignored.
type opts struct {
	m    map[string]string
	used map[string]bool
}

func (o *opts) get(key string) (string, bool) {
	o.used[key] = true
	v, ok := o.m[key]
	return strings.TrimSpace(v), ok && strings.TrimSpace(v) != ""
}

func (o *opts) str(key, def string) string {
	if v, ok := o.get(key); ok {
		return v
	}
	return def
}

func (o *opts) bool(key string, def bool) (bool, error) {
	v, ok := o.get(key)
	if !ok {
		return def, nil
	}
	switch strings.ToLower(v) {
	case "yes", "true", "on", "1":
		return true, nil
	case "no", "false", "off", "0":
		return false, nil
	}
	return false, fmt.Errorf("%w: %s %q: want yes or no", ErrBadOption, key, v)
}

func (o *opts) int(key string, def, min, max int) (int, error) {
	v, ok := o.get(key)
	if !ok {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > max {
		return 0, fmt.Errorf("%w: %s %q: want a whole number from %d to %d", ErrBadOption, key, v, min, max)
	}
	return n, nil
}

// duration accepts a Go duration ("30s", "1m") or, like fail2ban, plain
// seconds ("30").
func (o *opts) duration(key string, def, max time.Duration) (time.Duration, error) {
	v, ok := o.get(key)
	if !ok {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		n, err2 := strconv.Atoi(v)
		if err2 != nil {
			return 0, fmt.Errorf("%w: %s %q: want a duration such as 10s or 2m", ErrBadOption, key, v)
		}
		d = time.Duration(n) * time.Second
	}
	if d <= 0 || d > max {
		return 0, fmt.Errorf("%w: %s %q: want a duration above 0 and at most %s", ErrBadOption, key, v, max)
	}
	return d, nil
}

func (o *opts) policy(defRetries int) (policy, error) {
	p := policy{on: map[Kind]bool{Ban: true, Unban: true}}
	switch on := strings.ToLower(o.str("on", "both")); on {
	case "both", "ban,unban", "ban+unban":
	case "ban":
		p.on = map[Kind]bool{Ban: true}
	case "unban":
		p.on = map[Kind]bool{Unban: true}
	default:
		return p, fmt.Errorf("%w: on %q: want ban, unban or both", ErrBadOption, on)
	}
	var err error
	if p.timeout, err = o.duration("timeout", 10*time.Second, 10*time.Minute); err != nil {
		return p, err
	}
	if p.retries, err = o.int("retries", defRetries, 0, 10); err != nil {
		return p, err
	}
	return p, nil
}

func (o *opts) unknown() error {
	var bad []string
	for k := range o.m {
		if !o.used[k] {
			bad = append(bad, k)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	known := slices.Sorted(maps.Keys(o.used))
	return fmt.Errorf("%w: unknown option %q: known options are %s", ErrBadOption, slices.Min(bad), strings.Join(known, ", "))
}
