package main

import (
	"context"
	"errors"
)

func sectionFlood(ctx context.Context, o opts, s *Section) error {
	s.Skipped = "not implemented yet in benchreport"
	return nil
}
func sectionLogMatch(ctx context.Context, o opts, s *Section) error {
	s.Skipped = "not implemented yet in benchreport"
	return nil
}
func sectionControl(ctx context.Context, o opts, s *Section) error {
	s.Skipped = "not implemented yet in benchreport"
	return nil
}
func xdpbanLatency(ctx context.Context, o opts, runs int) ([]float64, error) {
	return nil, errors.New("xdpban daemon not available yet")
}
