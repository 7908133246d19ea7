package nftables

import (
	"time"

	"github.com/xdpban/xdpban/internal/bans"
)

const commentTag = bans.CommentTag

// maxComment is NFT_USERDATA_MAXLEN less the TLV header.
const maxComment = 250

func formatComment(jail string, expires time.Time) string {
	return bans.FormatComment(jail, expires, maxComment)
}

func parseComment(c string) (string, time.Time, bool, error) { return bans.ParseComment(c) }
