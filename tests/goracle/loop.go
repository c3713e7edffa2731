package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// maxFrame bounds one framed tar (64 MiB): the fuzzer sends small inputs, and
// a corrupt length must not make the oracle allocate without limit.
const maxFrame = 64 << 20

// tarLoop reads length-prefixed tars from r and writes each one's listing,
// length-prefixed, to w, until r ends.
//
// A frame is a 4-byte little-endian length and that many bytes, in both
// directions. The listing is exactly what `goracle tar` prints for the same
// bytes, including the final "error: ..." line when archive/tar refuses
// them, so the differential fuzz target (fuzz/fuzz_targets/tar_vs_go.rs)
// starts this process once and compares thousands of tars per second.
func tarLoop(r io.Reader, w io.Writer) error {
	in := bufio.NewReader(r)
	out := bufio.NewWriter(w)
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(in, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return out.Flush()
			}
			return fmt.Errorf("tar-loop: reading a frame length: %v", err)
		}
		n := binary.LittleEndian.Uint32(hdr[:])
		if n > maxFrame {
			return fmt.Errorf("tar-loop: frame of %d bytes exceeds %d", n, maxFrame)
		}
		data := make([]byte, n)
		if _, err := io.ReadFull(in, data); err != nil {
			return fmt.Errorf("tar-loop: reading a frame of %d bytes: %v", n, err)
		}
		listing := listFrame(data)
		binary.LittleEndian.PutUint32(hdr[:], uint32(listing.Len()))
		if _, err := out.Write(hdr[:]); err != nil {
			return err
		}
		if _, err := out.Write(listing.Bytes()); err != nil {
			return err
		}
		// The fuzz target waits for this answer before sending the next tar.
		if err := out.Flush(); err != nil {
			return err
		}
	}
}

// listFrame is listTar's output for one tar, with the "error: ..." line main
// prints for `goracle tar`. A panic inside archive/tar (which would crash a
// runtime's extraction) is reported as an error too, so the loop goes on.
func listFrame(data []byte) (listing *bytes.Buffer) {
	listing = new(bytes.Buffer)
	defer func() {
		if p := recover(); p != nil {
			fmt.Fprintf(listing, "error: panic: %v\n", p)
		}
	}()
	if err := listTar(bytes.NewReader(data), listing); err != nil {
		fmt.Fprintf(listing, "error: %v\n", err)
	}
	return listing
}
