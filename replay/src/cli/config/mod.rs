//! The relay's configuration: the file `highwater relay` reads (`file.rs`: TOML with
//! zooid's sections and key names, applied over the stored policy options) and
//! `highwater config` (`command.rs`: the stored options shown and changed one key at a
//! time). This file only names them.

mod command;
mod file;

pub(crate) use command::{ConfigArgs, run};
#[cfg(test)]
pub(crate) use file::parse;
pub(crate) use file::{Config, Defaults, load, load_dir};
