//! `view.*`: the web pages users see (after clicking a validation link), and their branding.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `view.*`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ViewConfig {
    /// `view.brand.*`: change the look without replacing the pages.
    pub brand: BrandConfig,
    /// `view.session.*`: whole-page replacements (mxisd's keys).
    pub session: ViewSessionConfig,
}

/// `view.brand.*`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct BrandConfig {
    /// The server name shown on pages (default: `matrix.domain`).
    pub name: Option<String>,
    /// An image file (PNG, SVG, JPEG, GIF or WebP) that replaces the built-in logo.
    pub logo: Option<PathBuf>,
    /// A CSS file served after the built-in style sheet, to override it.
    pub css: Option<PathBuf>,
}

/// `view.session.*`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ViewSessionConfig {
    /// `view.session.onTokenSubmit.*`
    #[serde(alias = "on_token_submit")]
    pub on_token_submit: OnTokenSubmitViews,
}

/// `view.session.onTokenSubmit.*`: HTML files with `%PLACEHOLDER%`s that replace the pages.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct OnTokenSubmitViews {
    /// Shown when a validation link worked and the client gave no `next_link`.
    pub success: Option<PathBuf>,
    /// Shown when a validation link did not work.
    pub failure: Option<PathBuf>,
}
