package iptables

import (
	"time"

	"github.com/xdpban/xdpban/internal/bans"
)

const commentTag = bans.CommentTag

// maxCommentLen is the shorter of ipset's (255) and xt_comment's (256)
// limits.
const maxCommentLen = 255

// formatComment is bans.FormatComment leaving reserve bytes for what the
// caller appends (a scope).
func formatComment(jail string, expires time.Time, reserve int) string {
	return bans.FormatComment(jail, expires, maxCommentLen-reserve)
}

func parseComment(c string) (string, time.Time, bool, error) { return bans.ParseComment(c) }
