//! Skills: installable packages of an Agent Skills `SKILL.md`, WebAssembly
//! components and a weir manifest, kept in a content-addressed store.

pub mod archive;
pub mod build;
pub mod js;
pub mod lock;
pub mod oci;
pub mod package;
pub mod python;
pub mod skill_md;
pub mod store;
pub mod toolchain;
