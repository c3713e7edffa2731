//! The `e2e` test target: imgscan against the real tools it models. Built
//! only with the `e2e` feature (`cargo test --features e2e --test e2e`;
//! `scripts/test` installs the tools with scripts/install-test-deps and runs
//! it). A missing tool fails its test with the package to install.
//!
//! - the Go oracle (`go`): Go's `archive/tar` and `encoding/json` against
//!   imgscan's readers (`go_oracle`, `differential_*`);
//! - `docker-registry`, skopeo, openssl, htpasswd and podman: registry pulls
//!   and `docker-daemon:` (`registry`), `imgscan serve` with a notifying
//!   registry (`serve`);
//! - PostgreSQL (`postgresql`): several `imgscan serve` replicas on one
//!   database, notified by a real registry (`serve_replicas`);
//! - umoci, podman and getcap, as root: what runtimes unpack
//!   (`runtime_oracle*`), and the sample's oracle (`sample_tools`);
//! - xmllint (libxml2-utils): JUnit XML against the vendored Jenkins JUnit
//!   schema (`junit_schema`).

mod support;
mod util;

mod differential_json;
mod differential_tar;
mod escalation;
mod go_oracle;
mod junit_schema;
mod policy_adoption;
mod registry;
mod runtime_oracle;
mod runtime_oracle_more;
mod runtime_oracle_red2;
mod sample_tools;
mod serve;
mod serve_replicas;
