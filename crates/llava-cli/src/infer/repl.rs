//! The `swift infer` conversation loop over any input and output, so tests drive it through
//! pipes (`../shared/spec/swift-llava.md` §4.4). Prompts and answers go to `out`; notices to
//! `log` (stderr in the CLI), as ms-swift logs them.

use std::io::{BufRead, Write};

use anyhow::Result;
use llava::{History, ImageInput, InferArgs, Model, Template};

use super::result_file::ResultFile;

/// Settings of a session.
pub struct Session<'a> {
    pub model: &'a Model,
    pub template: &'a Template,
    /// Template for every query (generation config, stop words, fetch limits).
    pub base: InferArgs,
    pub stream: bool,
    pub results: Option<ResultFile>,
}

enum Mode {
    Single,
    Multi,
}

/// Runs until `exit`/`quit` or the end of the input.
pub fn run(
    session: &mut Session<'_>,
    input: &mut impl BufRead,
    out: &mut impl Write,
    log: &mut impl Write,
) -> Result<()> {
    writeln!(log, "Input `exit` or `quit` to exit the conversation.")?;
    writeln!(
        log,
        "Input `multi-line` to switch to multi-line input mode."
    )?;
    writeln!(
        log,
        "Input `reset-system` to reset the system and clear the history."
    )?;
    if session.template.supports_multi_round() {
        writeln!(log, "Input `clear` to clear the history.")?;
    } else {
        writeln!(
            log,
            "The current template only supports single-round dialogues."
        )?;
    }
    writeln!(
        log,
        "Please enter the conversation content first, followed by the path to the multimedia file."
    )?;
    let mut mode = Mode::Single;
    let mut history: History = Vec::new();
    let mut system = session.base.system.clone();
    let mut reading_system = false;
    loop {
        let prompt = match (&mode, reading_system) {
            (Mode::Single, false) => "<<< ",
            (Mode::Single, true) => "<<<[S] ",
            (Mode::Multi, false) => "<<<[M] ",
            (Mode::Multi, true) => "<<<[MS] ",
        };
        write!(out, "{prompt}")?;
        out.flush()?;
        let read = match mode {
            Mode::Single => read_line(input),
            Mode::Multi => read_multi_line(input),
        };
        let text = match read {
            Ok(Some(text)) => text,
            Ok(None) => break,
            Err(e) if e.is::<NotUtf8>() => {
                writeln!(log, "{e}")?;
                continue;
            }
            Err(e) => return Err(e),
        };
        if reading_system {
            reading_system = false;
            // An empty answer restores the template's default system.
            system = (!text.trim().is_empty())
                .then(|| text.clone())
                .or(session.base.system.clone());
            history.clear();
            continue;
        }
        let command = text.trim().to_ascii_lowercase();
        match command.as_str() {
            "exit" | "quit" => break,
            "" => continue,
            "clear" => {
                history.clear();
                continue;
            }
            "reset-system" => {
                if !session.template.supports_system() {
                    writeln!(
                        log,
                        "The template {} takes no system text.",
                        session.template.name()
                    )?;
                    continue;
                }
                reading_system = true;
                continue;
            }
            "multi-line" if matches!(mode, Mode::Single) => {
                mode = Mode::Multi;
                writeln!(log, "End multi-line input with `#`.")?;
                writeln!(
                    log,
                    "Input `single-line` to switch to single-line input mode."
                )?;
                continue;
            }
            "single-line" if matches!(mode, Mode::Multi) => {
                mode = Mode::Single;
                continue;
            }
            _ => {}
        }
        write!(out, "Input a media path or URL <<< ")?;
        out.flush()?;
        let media = match read_line(input) {
            Ok(media) => media.unwrap_or_default(),
            Err(e) if e.is::<NotUtf8>() => {
                writeln!(log, "{e}; the query is dropped")?;
                continue;
            }
            Err(e) => return Err(e),
        };
        // An empty answer continues without an image (ms-swift 2.0.5 crashed here).
        let images: Vec<ImageInput> = media
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map(ImageInput::parse)
            .collect();
        if !session.template.supports_multi_round() {
            history.clear();
        }
        let args = InferArgs {
            images: images.clone(),
            history: history.clone(),
            system: system.clone(),
            ..session.base.clone()
        };
        match answer(session, &text, args, out) {
            Ok(new_history) => {
                if let Some(results) = &mut session.results {
                    let response = &new_history.last().expect("one round added").response;
                    let system_used = system.as_deref().or(session.template.default_system());
                    results.append(system_used, &text, response, &history, &images)?;
                }
                history = new_history;
            }
            Err(e) => writeln!(log, "error: {e:#}")?,
        }
        writeln!(out, "\n{}", "-".repeat(50))?;
    }
    if let Some(results) = &session.results {
        writeln!(log, "save_result_path: {}", results.path().display())?;
    }
    Ok(())
}

fn answer(
    session: &Session<'_>,
    query: &str,
    args: InferArgs,
    out: &mut impl Write,
) -> Result<History> {
    if session.stream {
        let mut stream = llava::inference_stream(session.model, session.template, query, args)?;
        for delta in &mut stream {
            write!(out, "{}", delta?.text)?;
            out.flush()?;
        }
        Ok(stream.into_result().1)
    } else {
        let (response, history) = llava::inference(session.model, session.template, query, args)?;
        write!(out, "{response}")?;
        Ok(history)
    }
}

/// A line of input that is not UTF-8: it is refused, and the session goes on.
#[derive(Debug)]
struct NotUtf8;

impl std::fmt::Display for NotUtf8 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the input line is not valid UTF-8 and was ignored")
    }
}

impl std::error::Error for NotUtf8 {}

/// One line without its end (`None` at the end of the input; [`NotUtf8`] for a line that is
/// not text, which is consumed whole).
fn read_line(input: &mut impl BufRead) -> Result<Option<String>> {
    let mut bytes = Vec::new();
    if input.read_until(b'\n', &mut bytes)? == 0 {
        return Ok(None);
    }
    let line = String::from_utf8(bytes).map_err(|_| NotUtf8)?;
    Ok(Some(line.trim_end_matches(['\n', '\r']).to_string()))
}

/// Lines until one ends with `#` (removed); joined with newlines. An unfinished input at the
/// end of the input is dropped, not answered.
fn read_multi_line(input: &mut impl BufRead) -> Result<Option<String>> {
    let mut lines = Vec::new();
    loop {
        let Some(line) = read_line(input)? else {
            return Ok(None);
        };
        if let Some(last) = line.strip_suffix('#') {
            lines.push(last.to_string());
            return Ok(Some(lines.join("\n")));
        }
        lines.push(line);
    }
}
