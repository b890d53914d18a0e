//! The settings' own tests: layering, refusals naming their source,
//! conflicts, and the reference `config.toml` against the defaults.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::layers::toml_value;
use super::*;

/// Loads with `flags` and exactly the variables in `env`; without a config
/// file in either, an empty one (not the repository's `./config.toml`).
fn load(flags: &ServeArgs, env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
    let empty = tempfile::NamedTempFile::new().unwrap();
    let mut flags = flags.clone();
    if flags.config.is_none() && !env.contains_key(CONFIG_ENV) {
        flags.config = Some(empty.path().to_path_buf());
    }
    Settings::load_from(&flags, &move |name| env.get(name).cloned())
}

/// Flags over a config file at `dir/shopd.toml` holding `text`.
fn with_file(dir: &Path, text: &str) -> ServeArgs {
    let path = dir.join("shopd.toml");
    std::fs::write(&path, text).unwrap();
    ServeArgs {
        config: Some(path),
        ..ServeArgs::default()
    }
}

fn refusal(flags: &ServeArgs, env: &[(&str, &str)]) -> String {
    load(flags, env).unwrap_err().to_string()
}

#[test]
fn the_defaults_are_read_like_any_value_and_each_key_has_its_variable() {
    let settings = Settings::default();
    assert_eq!(settings.server.listen, "127.0.0.1:8000".parse().unwrap());
    assert_eq!(settings.limits.max_body_bytes.get(), 1024 * 1024);
    assert_eq!(settings.server.request_timeout, Duration::from_secs(30));
    assert_eq!(settings.storage.flush_every, Duration::from_millis(500));
    assert_eq!(settings.storage.database_url, None);
    assert_eq!(settings.chat.bus_subject_prefix.as_str(), "shopd.chat");
    assert_eq!(settings.admin.token, None);
    for key in KEYS {
        assert_eq!(key.env, format!("SHOPD_{}", key.name.to_uppercase()));
    }
}

#[test]
fn flags_win_over_variables_over_the_file_over_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let mut flags = with_file(
        dir.path(),
        "listen = \"127.0.0.1:9\"\ndata_dir = \"/srv/a\"\nmax_list_limit = 7\n",
    );
    flags.data_dir = Some("/srv/b".into());
    let env = [("SHOPD_MAX_LIST_LIMIT", "8"), ("SHOPD_DATA_DIR", "/srv/c")];
    let settings = load(&flags, &env).unwrap();
    assert_eq!(settings.server.listen, "127.0.0.1:9".parse().unwrap());
    assert_eq!(settings.storage.data_dir, PathBuf::from("/srv/b"));
    assert_eq!(settings.limits.max_list_limit.get(), 8);
    assert_eq!(settings.limits.max_body_bytes.get(), 1024 * 1024);
}

#[test]
fn a_refused_value_names_the_flag_the_variable_or_the_file_key() {
    let flags = ServeArgs {
        max_body_bytes: Some("0".into()),
        ..ServeArgs::default()
    };
    let message = refusal(&flags, &[("SHOPD_MAX_BODY_BYTES", "5")]);
    assert!(message.starts_with("--max-body-bytes: "), "{message}");

    let message = refusal(&ServeArgs::default(), &[("SHOPD_MAX_BODY_BYTES", "lots")]);
    assert!(message.starts_with("SHOPD_MAX_BODY_BYTES: "), "{message}");
    assert!(message.contains("\"lots\""), "{message}");

    let dir = tempfile::tempdir().unwrap();
    let flags = with_file(dir.path(), "max_body_bytes = \"big\"\n");
    let message = refusal(&flags, &[]);
    let file = dir.path().join("shopd.toml");
    assert!(
        message.starts_with(&format!("max_body_bytes in {}: ", file.display())),
        "{message}"
    );

    let message = refusal(&ServeArgs::default(), &[("SHOPD_LISTEN", "localhost")]);
    assert!(message.starts_with("SHOPD_LISTEN: "), "{message}");
    let message = refusal(&ServeArgs::default(), &[("SHOPD_LOG_LEVEL", "shopd=loud")]);
    assert!(message.starts_with("SHOPD_LOG_LEVEL: "), "{message}");
}

#[test]
fn an_empty_variable_counts_as_unset() {
    let settings = load(&ServeArgs::default(), &[("SHOPD_CHAT_BUS", "")]).unwrap();
    assert_eq!(settings.chat.bus, None);
}

#[test]
fn unknown_keys_and_bad_toml_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let message = refusal(&with_file(dir.path(), "lisen = \"x\"\n"), &[]);
    assert!(
        message.contains("shopd.toml") && message.contains("`lisen`"),
        "{message}"
    );
    let message = refusal(&with_file(dir.path(), "listen = [\n"), &[]);
    assert!(message.contains("shopd.toml"), "{message}");
    let message = refusal(
        &ServeArgs::default(),
        &[("SHOPD_CONFIG", "/nonexistent/shopd.toml")],
    );
    assert!(message.contains("/nonexistent/shopd.toml"), "{message}");
}

#[test]
fn a_data_dir_with_a_database_url_is_refused_naming_both() {
    let url = ("SHOPD_DATABASE_URL", "postgres://shop:s3cret@db/shop");
    let flags = ServeArgs {
        data_dir: Some("/srv/shop".into()),
        ..ServeArgs::default()
    };
    let message = refusal(&flags, &[url]);
    assert!(
        message.starts_with("--data-dir conflicts with SHOPD_DATABASE_URL"),
        "{message}"
    );
    assert!(!message.contains("s3cret"), "{message}");
    // The default data directory is no conflict: it is simply unused.
    let settings = load(&ServeArgs::default(), &[url]).unwrap();
    assert!(settings.storage.database_url.is_some());
    // Nor is an emptied one (a systemd drop-in clearing the unit's).
    assert!(load(&ServeArgs::default(), &[url, ("SHOPD_DATA_DIR", "")]).is_ok());
    let message = refusal(&ServeArgs::default(), &[url, ("SHOPD_DATA_DIR", "/srv")]);
    assert!(
        message.starts_with("SHOPD_DATA_DIR conflicts with SHOPD_DATABASE_URL"),
        "{message}"
    );
}

#[test]
fn admin_token_errors_name_the_variable_or_the_file_setting() {
    let message = refusal(&ServeArgs::default(), &[(ADMIN_TOKEN_ENV, "short")]);
    assert!(message.starts_with("SHOPD_ADMIN_TOKEN: "), "{message}");
    assert!(!message.contains("short"), "{message}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "short\n").unwrap();
    let flags = ServeArgs {
        admin_token_file: Some(file.display().to_string()),
        ..ServeArgs::default()
    };
    let message = refusal(&flags, &[]);
    assert!(message.starts_with("--admin-token-file: "), "{message}");
    let message = refusal(
        &ServeArgs::default(),
        &[("SHOPD_ADMIN_TOKEN_FILE", "/nonexistent/token")],
    );
    assert!(
        message.starts_with("SHOPD_ADMIN_TOKEN_FILE: cannot read /nonexistent/token"),
        "{message}"
    );

    std::fs::write(&file, "0123456789abcdef\n").unwrap();
    let message = refusal(&flags, &[(ADMIN_TOKEN_ENV, "0123456789abcdef")]);
    assert!(
        message.starts_with("SHOPD_ADMIN_TOKEN conflicts with --admin-token-file"),
        "{message}"
    );
    let settings = load(&flags, &[]).unwrap();
    assert_eq!(
        settings.admin.token.as_ref().map(Secret::expose),
        Some("0123456789abcdef")
    );

    let message = refusal(
        &ServeArgs::default(),
        &[("SHOPD_PROTECT_CATALOGUE", "true")],
    );
    assert!(
        message.starts_with("SHOPD_PROTECT_CATALOGUE: needs an admin token"),
        "{message}"
    );
}

/// The reference `config.toml` at the repository's root: every key once,
/// with its built-in default (keys unset by default as a commented example;
/// a commented key with a default shows that default).
#[test]
fn the_reference_config_shows_every_key_with_its_default() {
    let text = include_str!("../../config.toml");
    let live: toml::Table = text.parse().expect("config.toml is valid TOML");
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (name, value) in &live {
        let key = KEYS.iter().find(|key| key.name == name.as_str());
        let key = key.unwrap_or_else(|| panic!("config.toml has unknown key {name}"));
        assert_ne!(
            key.default, "none",
            "{name} has no default: show it commented"
        );
        assert_eq!(
            value,
            &toml_value(key.default).unwrap(),
            "config.toml's {name}"
        );
        *seen.entry(key.name).or_default() += 1;
    }
    for line in text.lines() {
        let Some((name, value)) = line
            .strip_prefix("# ")
            .and_then(|line| line.split_once(" = "))
        else {
            continue;
        };
        let Some(key) = KEYS.iter().find(|key| key.name == name) else {
            continue;
        };
        if key.default != "none" {
            assert_eq!(
                toml_value(value).unwrap(),
                toml_value(key.default).unwrap(),
                "config.toml's commented {name}"
            );
        }
        *seen.entry(key.name).or_default() += 1;
    }
    for key in KEYS {
        assert_eq!(
            seen.get(key.name),
            Some(&1),
            "config.toml shows {} once",
            key.name
        );
    }
}

#[test]
fn the_help_shows_each_default_as_the_code_has_it() {
    use clap::CommandFactory;
    let help = Cli::command().render_long_help().to_string();
    assert!(
        help.contains("[env: SHOPD_MAX_BODY_BYTES] [default: 1048576]"),
        "{help}"
    );
    assert!(
        help.contains("[env: SHOPD_LISTEN] [default: 127.0.0.1:8000]"),
        "{help}"
    );
    assert!(help.contains("nothing is dropped"), "{help}");
}

#[test]
fn a_database_url_never_shows_its_password() {
    let url: DatabaseUrl =
        "postgres://shop:s3cret@db.example:5433/shop?password=other&sslmode=disable"
            .parse()
            .unwrap();
    let shown = format!("{url} {url:?}");
    assert!(
        !shown.contains("s3cret") && !shown.contains("other"),
        "{shown}"
    );
    assert!(shown.contains("shop:***@db.example:5433/shop"), "{shown}");
    assert!(shown.contains("password=***&sslmode=disable"), "{shown}");
    let mut settings = Settings::default();
    settings.storage.database_url = Some(url);
    assert!(!format!("{settings:?}").contains("s3cret"));
}

#[test]
fn unknown_shopd_variables_are_found_and_others_left_alone() {
    let names = [
        "SHOPD_LISTN",
        "SHOPD_LISTEN",
        "SHOPD_CONFIG",
        "SHOPD_ADMIN_TOKEN",
        "PATH",
    ];
    let unknown = unknown_variables(names.iter().map(|name| (*name).to_owned()));
    assert_eq!(unknown, ["SHOPD_LISTN"]);
}

#[test]
fn scheduled_backups_are_off_by_default_and_need_a_directory_when_on() {
    let defaults = load(&ServeArgs::default(), &[]).unwrap();
    assert!(defaults.backup.every.is_zero());
    assert_eq!((defaults.backup.dir, defaults.backup.keep.get()), (None, 7));
    let every = ServeArgs {
        backup_every_secs: Some("60".into()),
        ..ServeArgs::default()
    };
    let message = refusal(&every, &[]);
    assert!(
        message.starts_with("--backup-every-secs: scheduled backups need backup_dir"),
        "{message}"
    );
    let settings = load(&every, &[("SHOPD_BACKUP_DIR", "/srv/backups")]).unwrap();
    assert_eq!(settings.backup.every, Duration::from_secs(60));
    assert_eq!(settings.backup.dir, Some(PathBuf::from("/srv/backups")));
    assert!(
        refusal(&ServeArgs::default(), &[("SHOPD_BACKUP_KEEP", "0")])
            .starts_with("SHOPD_BACKUP_KEEP")
    );
}
