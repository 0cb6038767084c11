package server

import "github.com/weirmq/weir/internal/broker"

// freeSpace is where the broker's disk watermark reads the free space:
// Config.FreeSpace when a test or an embedder set it, else statfs of the
// data directory. The watermark is always on in a server, so that a write
// failing with ENOSPC pauses client publishes even with disk-free-min 0.
func (s *Server) freeSpace() broker.FreeSpace {
	if s.cfg.FreeSpace != nil {
		return s.cfg.FreeSpace
	}
	return broker.DirFreeSpace(s.cfg.DataDir)
}
