//! Start-up that never lies: a start that fails says nothing on stdout (no
//! "listening" line) and creates nothing; every settings error names the
//! flag, variable or file key it came from; conflicting settings are
//! refused; a second instance on one database starts quietly.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output};

use crate::helpers::{scratch, shopd_command};
use crate::nats::free_port;
use crate::pg::fresh_database;
use crate::process::{start_command, terminate};

/// Runs shopd over `cwd/data` with `extra` flags; it must refuse to start,
/// print nothing on stdout, and leave no data directory. Its stderr.
fn refused(cwd: &Path, configure: impl FnOnce(&mut Command)) -> String {
    let data = cwd.join("data");
    let mut command = shopd_command(cwd);
    command.arg("--data-dir").arg(&data);
    configure(&mut command);
    let output: Output = command.output().expect("run shopd");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "shopd started: {stderr}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "",
        "a failed start says nothing on stdout ({stderr})"
    );
    assert!(!data.exists(), "a failed start created {}", data.display());
    stderr
}

#[test]
fn a_busy_port_a_bad_listen_or_an_unreachable_bus_creates_nothing_and_prints_nothing() {
    let (_dir, cwd) = scratch();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let message = refused(&cwd, |c| {
        c.args(["--listen", &addr]);
    });
    assert!(message.contains(&addr), "{message}");

    let message = refused(&cwd, |c| {
        c.args(["--listen", "127.0.0.1"]);
    });
    assert!(message.starts_with("shopd: --listen: "), "{message}");

    let bus = format!("nats://127.0.0.1:{}", free_port());
    let message = refused(&cwd, |c| {
        c.args(["--listen", "127.0.0.1:0", "--chat-bus", &bus]);
    });
    assert!(
        message.contains("chat bus") && message.contains(&bus),
        "{message}"
    );
}

#[test]
fn settings_errors_name_the_flag_the_variable_or_the_file_key() {
    let (_dir, cwd) = scratch();
    let message = refused(&cwd, |c| {
        c.env("SHOPD_MAX_BODY_BYTES", "lots");
    });
    assert!(
        message.starts_with("shopd: SHOPD_MAX_BODY_BYTES: "),
        "{message}"
    );
    assert!(!message.contains("--max-body-bytes"), "{message}");

    let message = refused(&cwd, |c| {
        c.env("SHOPD_MAX_BODY_BYTES", "5")
            .args(["--max-body-bytes", "0"]);
    });
    assert!(
        message.starts_with("shopd: --max-body-bytes: "),
        "{message}"
    );

    // Past a year: refused, not left to overflow the clock while serving.
    let message = refused(&cwd, |c| {
        c.args(["--request-timeout-secs", "18446744073709551615"]);
    });
    assert!(
        message.starts_with("shopd: --request-timeout-secs: "),
        "{message}"
    );

    std::fs::write(cwd.join("config.toml"), "chat_queue_len = 0\n").unwrap();
    let message = refused(&cwd, |_| {});
    assert!(
        message.starts_with("shopd: chat_queue_len in config.toml: "),
        "{message}"
    );
    std::fs::remove_file(cwd.join("config.toml")).unwrap();

    let message = refused(&cwd, |c| {
        c.env("SHOPD_ADMIN_TOKEN", "too-short");
    });
    assert!(
        message.starts_with("shopd: SHOPD_ADMIN_TOKEN: "),
        "{message}"
    );
    assert!(!message.contains("admin_token_file"), "{message}");
    assert!(!message.contains("too-short"), "{message}");
}

#[test]
fn conflicting_settings_are_refused_naming_both() {
    let (_dir, cwd) = scratch();
    let message = refused(&cwd, |c| {
        c.env(
            "SHOPD_DATABASE_URL",
            "postgres://shop:hunter2@127.0.0.1:1/shop",
        );
    });
    assert!(
        message.starts_with("shopd: --data-dir conflicts with SHOPD_DATABASE_URL"),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");

    let token = cwd.join("token");
    std::fs::write(&token, "0123456789abcdef\n").unwrap();
    let message = refused(&cwd, |c| {
        c.env("SHOPD_ADMIN_TOKEN", "fedcba9876543210")
            .arg("--admin-token-file")
            .arg(&token);
    });
    assert!(
        message.starts_with("shopd: SHOPD_ADMIN_TOKEN conflicts with --admin-token-file"),
        "{message}"
    );
}

#[tokio::test]
async fn a_second_instance_on_one_database_starts_without_a_notice() {
    let Some(database) = fresh_database("second_instance_notice").await else {
        return;
    };
    let (_dir, cwd) = scratch();
    let start = || {
        let mut command = shopd_command(&cwd);
        command.env("SHOPD_LOG_LEVEL", "info").args([
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            &database.url,
        ]);
        start_command(command).serving("shopd on PostgreSQL")
    };
    let mut first = start();
    let mut second = start();
    for process in [&mut first, &mut second] {
        assert!(terminate(&mut process.child).success());
    }
    let mut stderr = String::new();
    second
        .child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(stderr.contains("shopd started"), "{stderr}");
    assert!(!stderr.contains("already exists"), "{stderr}");
    assert!(!stderr.contains("NOTICE"), "{stderr}");
}

#[test]
fn a_misspelt_variable_is_warned_about_by_name() {
    let (_dir, cwd) = scratch();
    let mut command = shopd_command(&cwd);
    command
        .env("SHOPD_MAX_BODY_BYTS", "10")
        .arg("--data-dir")
        .arg(cwd.join("data"))
        .args(["--listen", "127.0.0.1:0"]);
    let mut shopd = start_command(command).serving("shopd with a misspelt variable");
    assert!(terminate(&mut shopd.child).success());
    let mut stderr = String::new();
    shopd
        .child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        stderr.contains("SHOPD_MAX_BODY_BYTS") && stderr.contains("not a shopd setting"),
        "{stderr}"
    );
}
