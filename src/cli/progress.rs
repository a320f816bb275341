//! What the CLI shows while long work runs: a spinner on a terminal, nothing when stderr is
//! piped (indicatif hides its bars then), and afterwards how long each phase took.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::pb;

/// A spinner on stderr saying `message`, with the time elapsed; hidden when stderr is not a
/// terminal. Finish it with [`ProgressBar::finish_and_clear`].
pub fn spinner(message: impl Into<std::borrow::Cow<'static, str>>) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
        bar.set_style(style);
    }
    bar.set_message(message);
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// `parse 1.2 s, validate 310 ms, index 42 ms, tests 5 ms`: the server's phases, then the
/// whole call as the client waited for it.
pub fn phases_line(timings: Option<&pb::PhaseTimings>, waited: Duration) -> String {
    let mut line = String::from("took ");
    if let Some(t) = timings {
        let phases = [
            ("parse", t.parse_micros),
            ("validate", t.validate_micros),
            ("index", t.index_micros),
            ("tests", t.tests_micros),
        ];
        for (name, micros) in phases {
            line.push_str(&format!(
                "{name} {}, ",
                human(Duration::from_micros(micros))
            ));
        }
    }
    line.push_str(&format!("{} in all", human(waited)));
    line
}

/// A duration as people read it: `850 µs`, `42 ms`, `1.2 s`.
pub fn human(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format!("{:.1} s", d.as_secs_f64())
    } else if d >= Duration::from_millis(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{} µs", d.as_micros())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_read_in_the_unit_that_fits() {
        let t = pb::PhaseTimings {
            parse_micros: 1_240_000,
            validate_micros: 310_000,
            index_micros: 850,
            tests_micros: 0,
        };
        assert_eq!(
            phases_line(Some(&t), Duration::from_millis(1700)),
            "took parse 1.2 s, validate 310 ms, index 850 µs, tests 0 µs, 1.7 s in all"
        );
        assert_eq!(
            phases_line(None, Duration::from_millis(3)),
            "took 3 ms in all"
        );
    }
}
