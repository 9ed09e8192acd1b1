//! Templates and docs/configuration.md come from the code.

use super::*;

#[test]
fn templates_list_every_setting_and_load_back_as_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let defaults = Config::load(&opts(dir.path(), &[])).unwrap();
    for (format, file) in [
        (TemplateFormat::Env, "t.env"),
        (TemplateFormat::Toml, "t.toml"),
    ] {
        let text = template(format);
        for spec in lancesync_config::spec::SETTINGS {
            let key = if format == TemplateFormat::Toml {
                spec.toml_key()
            } else {
                spec.name.to_string()
            };
            assert!(
                text.contains(&format!("\n#{key}")),
                "{key} missing from {format:?} template"
            );
        }
        // Commented out, the template changes nothing; uncommented, it sets every default.
        let uncommented: String = text
            .lines()
            .map(|l| {
                if l.starts_with('#') && l[1..].starts_with(|c: char| c.is_ascii_alphabetic()) {
                    &l[1..]
                } else {
                    l
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        for body in [text.clone(), uncommented] {
            let path = dir.path().join(file);
            std::fs::write(&path, &body).unwrap();
            let mut o = opts(dir.path(), &[]);
            match format {
                TemplateFormat::Toml => o.config_file = Some(path),
                _ => o.env_file = EnvFile::Path(path),
            }
            let loaded = Config::load(&o).unwrap_or_else(|e| panic!("{format:?}: {e}"));
            let values = |c: &Config| {
                c.entries()
                    .iter()
                    .map(|e| (e.name, e.value.clone()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(values(&loaded), values(&defaults), "{format:?}");
        }
    }
}

#[test]
fn docs_configuration_md_is_generated_from_the_code() {
    let path = Path::new(&checkout_dir()).join("../../docs/configuration.md");
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == template(TemplateFormat::Markdown),
        "docs/configuration.md is out of date: run `cargo run -p sync-cli -- config generate --format markdown --output docs/configuration.md --force`"
    );
}

/// This package's folder in the checkout under test: read when the test runs, since a test
/// binary reused from a shared target directory may have been compiled in another checkout.
fn checkout_dir() -> std::ffi::OsString {
    std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR")
}
