//! The everyday tools of a Unix service, generated from the same command
//! line definition as `--help`: shell completions and the manual page.

use std::process::Command;

use crate::process::shopd_command;
use crate::support::scratch;

/// `shopd ARGS` must succeed; its standard output.
fn output_of(args: &[&str]) -> String {
    let (_dir, cwd) = scratch();
    let output = shopd_command(&cwd).args(args).output().expect("run shopd");
    assert!(
        output.status.success(),
        "shopd {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8")
}

#[test]
fn completions_cover_every_command_and_flag_for_bash_zsh_and_fish() {
    for shell in ["bash", "zsh", "fish"] {
        let script = output_of(&["completions", shell]);
        for word in [
            "export",
            "import",
            "check",
            "completions",
            "man",
            "--data-dir",
            "--shutdown-drain-secs",
            "--chat-bus",
        ] {
            // fish names long flags without their dashes (`-l data-dir`).
            let word = if shell == "fish" {
                word.trim_start_matches("--")
            } else {
                word
            };
            assert!(script.contains(word), "{shell} completions lack {word}");
        }
    }
}

#[test]
fn the_bash_completion_script_is_valid_bash() {
    let script = output_of(&["completions", "bash"]);
    let (_dir, cwd) = scratch();
    let path = cwd.join("shopd.bash");
    std::fs::write(&path, script).expect("write the script");
    let check = Command::new("bash")
        .arg("-n")
        .arg(&path)
        .output()
        .expect("run bash -n");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn an_unknown_shell_is_refused_naming_the_ones_there_are() {
    let (_dir, cwd) = scratch();
    let output = shopd_command(&cwd)
        .args(["completions", "cmd.exe"])
        .output()
        .expect("run shopd");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("bash") && stderr.contains("zsh"),
        "{stderr}"
    );
}

#[test]
fn the_manual_page_is_roff_with_every_flag_and_command() {
    let page = output_of(&["man"]);
    assert!(page.contains(".TH shopd 1"), "{page}");
    for section in [".SH NAME", ".SH SYNOPSIS", ".SH OPTIONS", ".SH SUBCOMMANDS"] {
        assert!(page.contains(section), "no {section}");
    }
    // Flags are written with roff's escaped hyphens.
    for flag in [
        "data\\-dir",
        "shutdown\\-drain\\-secs",
        "admin\\-token\\-file",
    ] {
        assert!(page.contains(flag), "no --{flag}");
    }
    for command in ["shopd\\-export", "shopd\\-import", "shopd\\-check"] {
        assert!(page.contains(command), "no {command}");
    }
}
