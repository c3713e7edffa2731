// goracle prints how Go's standard library — the parsers container runtimes
// use (moby, containerd, podman, cri-o and umoci read layers with
// archive/tar and JSON with encoding/json) — reads an input, in a canonical
// form imgscan's tests compare their own reading with.
//
// Standard library only, so Debian's golang-go builds it offline:
//
//	go build -o goracle . && ./goracle tar < layer.tar
//
// Subcommands (input on standard input, output on standard output):
//
//	tar            one line per member, as archive/tar's Reader returns it (tar.go)
//	tar-loop       the same for many tars, framed, for the differential fuzz target (loop.go)
//	json KIND      the fields runtimes read from an image config, manifest,
//	               index or docker manifest.json, as encoding/json decodes them (json.go)
//
// An input Go rejects prints "error: ..." as the last line and exits 0, so a
// test can compare "Go refuses" with "imgscan refuses".
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: goracle tar | goracle json KIND")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "tar":
		err = listTar(os.Stdin, os.Stdout)
	case "tar-loop":
		err = tarLoop(os.Stdin, os.Stdout)
	case "json":
		if len(os.Args) < 3 {
			fmt.Fprintln(os.Stderr, "usage: goracle json config|manifest|index|docker-manifest")
			os.Exit(2)
		}
		err = decodeJSON(os.Args[2], os.Stdin, os.Stdout)
	default:
		fmt.Fprintf(os.Stderr, "goracle: unknown subcommand %q\n", os.Args[1])
		os.Exit(2)
	}
	if err != nil {
		fmt.Printf("error: %v\n", err)
	}
}
