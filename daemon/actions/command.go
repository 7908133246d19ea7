package actions

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type commandAction struct {
	policy
	path string
	args []string // with <tags>
}

func (*commandAction) Kind() string { return "command" }

var commandTags = []string{"<event>", "<jail>", "<addr>", "<prefix>", "<failures>", "<bantime>"}

func newCommand(o *opts) (*commandAction, error) {
	p, err := o.policy(0)
	if err != nil {
		return nil, err
	}
	c := &commandAction{policy: p}
	path, ok := o.get("path")
	if !ok {
		return nil, fmt.Errorf("%w: path is missing: give an absolute path, e.g. command[path=/usr/local/bin/on-ban]", ErrBadOption)
	}
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("%w: path %q is not absolute: give the full path of the executable (no shell, no PATH lookup)", ErrBadOption, path)
	}
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: path %q: %w", ErrBadOption, path, errors.Unwrap(err))
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("%w: path %q is not a regular file: give an executable", ErrBadOption, path)
	case fi.Mode().Perm()&0o111 == 0:
		return nil, fmt.Errorf("%w: path %q is not executable: chmod +x it", ErrBadOption, path)
	}
	c.path = filepath.Clean(path)
	c.args = strings.Fields(o.str("args", "<event> <jail> <addr>"))
	for _, a := range c.args {
		rest := a
		for _, t := range commandTags {
			rest = strings.ReplaceAll(rest, t, "")
		}
		if i := strings.IndexByte(rest, '<'); i >= 0 && strings.Contains(rest[i:], ">") {
			return nil, fmt.Errorf("%w: args %q: unknown tag in %q: known tags are %s", ErrBadOption, o.m["args"], a, strings.Join(commandTags, " "))
		}
	}
	return c, nil
}

// Run executes the command once. Values reach it as separate argv
// entries and environment variables; nothing is parsed by a shell.
func (c *commandAction) Run(ctx context.Context, ev Event) error {
	doc := ev.Document()
	r := strings.NewReplacer("<event>", doc.Event, "<jail>", doc.Jail, "<addr>", doc.Addr,
		"<prefix>", doc.Prefix, "<failures>", strconv.Itoa(doc.Failures),
		"<bantime>", strconv.FormatInt(doc.BanTime, 10))
	args := make([]string, len(c.args))
	for i, a := range c.args {
		args[i] = r.Replace(a)
	}
	lines := strings.Join(doc.Lines, "\n")
	cmd := exec.CommandContext(ctx, c.path, args...)
	cmd.Env = []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"XDPBAN_EVENT=" + doc.Event, "XDPBAN_JAIL=" + doc.Jail,
		"XDPBAN_ADDR=" + doc.Addr, "XDPBAN_PREFIX=" + doc.Prefix,
		"XDPBAN_FAILURES=" + strconv.Itoa(doc.Failures),
		"XDPBAN_BANTIME=" + strconv.FormatInt(doc.BanTime, 10),
		"XDPBAN_TIME=" + doc.Time, "XDPBAN_LINES=" + lines,
	}
	cmd.Dir = "/"
	if lines != "" {
		lines += "\n"
	}
	cmd.Stdin = strings.NewReader(lines)
	out := &capped{max: 4096}
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group, killed whole on timeout: a script that
	// forks a sleeper must not outlive its deadline.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		return fmt.Errorf("command %s: killed after timeout: %w", c.path, ctx.Err())
	}
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return fmt.Errorf("command %s: %s: %q", c.path, ee.ProcessState, strings.TrimSpace(out.String()))
		}
		return fmt.Errorf("command %s: %w", c.path, err)
	}
	return nil
}

// capped keeps the first max bytes written to it.
type capped struct {
	bytes.Buffer
	max int
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - c.Len(); room > 0 {
		if len(p) > room {
			c.Buffer.Write(p[:room])
		} else {
			c.Buffer.Write(p)
		}
	}
	return len(p), nil
}
