//! A one-line pull progress display on standard error, for terminals only
//! (`--quiet` or a redirected standard error turn it off).

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use scanner::source::registry::{Progress, ProgressSink};

#[derive(Default)]
struct State {
    image: String,
    layers: usize,
    done: usize,
    total: u64,
    got: u64,
    drawn: Option<Instant>,
}

/// Redraws `pulling IMAGE  2/4 layers  3.1/7.6 MB` at most ten times a second.
#[derive(Default)]
pub(crate) struct TermProgress(Mutex<State>);

/// The display, when standard error is a terminal and output is not quiet.
pub(crate) fn sink(quiet: bool) -> Option<ProgressSink> {
    (!quiet && std::io::stderr().is_terminal())
        .then(|| ProgressSink(std::sync::Arc::new(TermProgress::default())))
}

fn mb(n: u64) -> String {
    format!("{:.1}", n as f64 / 1e6)
}

impl TermProgress {
    fn draw(s: &mut State, force: bool) {
        if !force
            && s.drawn
                .is_some_and(|t| t.elapsed() < Duration::from_millis(100))
        {
            return;
        }
        s.drawn = Some(Instant::now());
        let line = format!(
            "pulling {}  {}/{} layers  {}/{} MB",
            s.image,
            s.done,
            s.layers,
            mb(s.got),
            mb(s.total)
        );
        let mut e = std::io::stderr().lock();
        let _ = write!(e, "\r\x1b[2K{line}");
        let _ = e.flush();
    }
}

impl Progress for TermProgress {
    fn start(&self, image: &str, layers: usize, bytes: u64) {
        if let Ok(mut s) = self.0.lock() {
            *s = State {
                image: image.to_owned(),
                layers,
                total: bytes,
                ..State::default()
            };
            Self::draw(&mut s, true);
        }
    }

    fn advance(&self, n: u64) {
        if let Ok(mut s) = self.0.lock() {
            s.got += n;
            Self::draw(&mut s, false);
        }
    }

    fn layer_done(&self) {
        if let Ok(mut s) = self.0.lock() {
            s.done += 1;
            Self::draw(&mut s, false);
        }
    }

    fn finish(&self) {
        let mut e = std::io::stderr().lock();
        let _ = write!(e, "\r\x1b[2K");
        let _ = e.flush();
    }
}
