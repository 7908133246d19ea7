package daemon

import (
	"errors"

	"github.com/xdpban/xdpban/daemon/ledger"
)

// DefaultJail is the jail of a ban given on the command line.
const DefaultJail = ledger.DefaultJail

// ErrDryRun: a dry-run daemon enforces nothing.
var ErrDryRun = errors.New("daemon runs with --dry-run: nothing is enforced")
