package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"time"
)

// Standard-library copies of the shapes container runtimes decode image
// documents into: image-spec specs-go/v1 (Image, ImageConfig, RootFS,
// History, Platform, Descriptor, Manifest, Index), moby's Image/V1Image and
// container.Config (merged into the same structs: every field either knows),
// and the docker-archive manifestItem of moby image/tarexport and
// containers/image docker/internal/tarfile.

// strSlice is moby's strslice.StrSlice: a JSON string or a list of strings.
type strSlice []string

func (e *strSlice) UnmarshalJSON(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	p := make([]string, 0, 1)
	if err := json.Unmarshal(b, &p); err != nil {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		p = append(p, s)
	}
	*e = p
	return nil
}

type healthConfig struct {
	Test          []string `json:",omitempty"`
	Interval      time.Duration
	Timeout       time.Duration
	StartPeriod   time.Duration
	StartInterval time.Duration
	Retries       int
}

type containerConfig struct {
	Hostname        string
	Domainname      string
	User            string
	AttachStdin     bool
	AttachStdout    bool
	AttachStderr    bool
	ExposedPorts    map[string]struct{}
	Tty             bool
	OpenStdin       bool
	StdinOnce       bool
	Env             []string
	Cmd             strSlice
	Healthcheck     *healthConfig
	ArgsEscaped     bool
	Image           string
	Volumes         map[string]struct{}
	WorkingDir      string
	Entrypoint      strSlice
	NetworkDisabled bool
	MacAddress      string
	OnBuild         []string
	Labels          map[string]string
	StopSignal      string
	StopTimeout     *int
	Shell           strSlice
}

type rootFS struct {
	Type    string   `json:"type"`
	DiffIDs []string `json:"diff_ids"`
}

type history struct {
	Created    *time.Time `json:"created,omitempty"`
	CreatedBy  string     `json:"created_by,omitempty"`
	Author     string     `json:"author,omitempty"`
	Comment    string     `json:"comment,omitempty"`
	EmptyLayer bool       `json:"empty_layer,omitempty"`
}

type image struct {
	Created         *time.Time       `json:"created,omitempty"`
	Author          string           `json:"author,omitempty"`
	Architecture    string           `json:"architecture"`
	OS              string           `json:"os"`
	OSVersion       string           `json:"os.version,omitempty"`
	OSFeatures      []string         `json:"os.features,omitempty"`
	Variant         string           `json:"variant,omitempty"`
	Config          *containerConfig `json:"config,omitempty"`
	RootFS          *rootFS          `json:"rootfs"`
	History         []history        `json:"history,omitempty"`
	ID              string           `json:"id,omitempty"`
	Parent          string           `json:"parent,omitempty"`
	Comment         string           `json:"comment,omitempty"`
	Container       string           `json:"container,omitempty"`
	ContainerConfig containerConfig  `json:"container_config"`
	DockerVersion   string           `json:"docker_version,omitempty"`
	Size            int64            `json:",omitempty"`
}

type platform struct {
	Architecture string   `json:"architecture"`
	OS           string   `json:"os"`
	OSVersion    string   `json:"os.version,omitempty"`
	OSFeatures   []string `json:"os.features,omitempty"`
	Variant      string   `json:"variant,omitempty"`
	Features     []string `json:"features,omitempty"`
}

type descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	URLs         []string          `json:"urls,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	Data         []byte            `json:"data,omitempty"`
	Platform     *platform         `json:"platform,omitempty"`
	ArtifactType string            `json:"artifactType,omitempty"`
}

type manifest struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType,omitempty"`
	ArtifactType  string            `json:"artifactType,omitempty"`
	Config        descriptor        `json:"config"`
	Layers        []descriptor      `json:"layers"`
	Subject       *descriptor       `json:"subject,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

type index struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType,omitempty"`
	ArtifactType  string            `json:"artifactType,omitempty"`
	Manifests     []descriptor      `json:"manifests"`
	Subject       *descriptor       `json:"subject,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

type manifestItem struct {
	Config       string
	RepoTags     []string
	Layers       []string
	Parent       string                `json:",omitempty"`
	LayerSources map[string]descriptor `json:",omitempty"`
}

func strs(v []string) []string {
	if v == nil {
		return []string{}
	}
	return v
}

func viewDescriptor(d descriptor) map[string]any {
	var p any
	if d.Platform != nil {
		p = map[string]any{
			"os":           d.Platform.OS,
			"architecture": d.Platform.Architecture,
			"variant":      d.Platform.Variant,
		}
	}
	ann := d.Annotations
	if ann == nil {
		ann = map[string]string{}
	}
	return map[string]any{
		"mediaType":   d.MediaType,
		"digest":      d.Digest,
		"size":        d.Size,
		"platform":    p,
		"annotations": ann,
	}
}

func viewDescriptors(ds []descriptor) []any {
	out := []any{}
	for _, d := range ds {
		out = append(out, viewDescriptor(d))
	}
	return out
}

// view decodes data as kind and returns the fields imgscan reads.
func view(kind string, data []byte) (any, error) {
	switch kind {
	case "config":
		var img image
		if err := json.Unmarshal(data, &img); err != nil {
			return nil, err
		}
		var c containerConfig
		if img.Config != nil {
			c = *img.Config
		}
		ports := []string{}
		for p := range c.ExposedPorts {
			ports = append(ports, p)
		}
		sort.Strings(ports)
		var diffIDs []string
		if img.RootFS != nil {
			diffIDs = img.RootFS.DiffIDs
		}
		// created_by of each step that made a layer, when they line up.
		var createdBy any
		steps := []string{}
		for _, h := range img.History {
			if !h.EmptyLayer {
				steps = append(steps, h.CreatedBy)
			}
		}
		if img.History != nil && len(steps) == len(diffIDs) {
			createdBy = steps
		}
		return map[string]any{
			"architecture":     img.Architecture,
			"os":               img.OS,
			"variant":          img.Variant,
			"user":             c.User,
			"exposed_ports":    ports,
			"entrypoint":       strs(c.Entrypoint),
			"cmd":              strs(c.Cmd),
			"diff_ids":         strs(diffIDs),
			"layer_created_by": createdBy,
		}, nil
	case "manifest":
		var m manifest
		if err := json.Unmarshal(data, &m); err != nil {
			return nil, err
		}
		return map[string]any{
			"schemaVersion": m.SchemaVersion,
			"mediaType":     m.MediaType,
			"config":        viewDescriptor(m.Config),
			"layers":        viewDescriptors(m.Layers),
		}, nil
	case "index":
		var ix index
		if err := json.Unmarshal(data, &ix); err != nil {
			return nil, err
		}
		return map[string]any{"manifests": viewDescriptors(ix.Manifests)}, nil
	case "docker-manifest":
		var items []manifestItem
		if err := json.Unmarshal(data, &items); err != nil {
			return nil, err
		}
		out := []any{}
		for _, it := range items {
			out = append(out, map[string]any{
				"Config":   it.Config,
				"RepoTags": strs(it.RepoTags),
				"Layers":   strs(it.Layers),
			})
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown kind %q (config, manifest, index, docker-manifest)", kind)
}

// decodeJSON decodes one document of the given kind with encoding/json and
// prints the fields runtimes use, canonically: one JSON line. A document Go
// rejects is an error (printed by main as "error: ...").
//
// Kind "loop" reads many framed documents instead (see decodeLoop), so a
// test can ask about thousands of documents with one process.
func decodeJSON(kind string, r io.Reader, w io.Writer) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if kind == "loop" {
		return decodeLoop(data, w)
	}
	v, err := view(kind, data)
	if err != nil {
		return err
	}
	out, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", out)
	return err
}

// decodeLoop answers many framed documents: each frame is a kind name
// line-terminated, a 4-byte big-endian length, then the document. Each answer
// is one line: the view, or "error: ...".
func decodeLoop(data []byte, w io.Writer) error {
	for len(data) > 0 {
		nl := -1
		for i, b := range data {
			if b == '\n' {
				nl = i
				break
			}
		}
		if nl < 0 || len(data) < nl+5 {
			return fmt.Errorf("bad frame")
		}
		kind := string(data[:nl])
		n := int(data[nl+1])<<24 | int(data[nl+2])<<16 | int(data[nl+3])<<8 | int(data[nl+4])
		data = data[nl+5:]
		if n > len(data) {
			return fmt.Errorf("bad frame length")
		}
		doc := data[:n]
		data = data[n:]
		v, err := view(kind, doc)
		if err != nil {
			fmt.Fprintf(w, "error: %v\n", err)
			continue
		}
		out, err := json.Marshal(v)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "%s\n", out)
	}
	return nil
}
