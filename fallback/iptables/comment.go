package iptables

import (
	"time"

	"github.com/xdpban/xdpban/internal/bans"
)

const commentTag = bans.CommentTag

// maxCommentLen is the shorter of ipset's (255) and xt_comment's (256)
// limits.
const maxCommentLen = 255

func formatComment(jail string, expires time.Time) string {
	return bans.FormatComment(jail, expires, maxCommentLen)
}

func parseComment(c string) (string, time.Time, bool, error) { return bans.ParseComment(c) }
