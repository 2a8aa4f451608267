//! Static assets of the web pages (style sheet, logo), compiled into the binary or overridden
//! by the operator.

use crate::app::App;
use crate::error::{Error, ErrorKind, Result};
use crate::http::{Reply, Req};

/// `GET /_matrix/identity/_oxisd/static/{name}`
///
/// - no auth; the asset with caching headers; 404 `M_NOT_FOUND` for anything else.
pub fn get_static_asset(app: &App, req: &Req) -> Result<Reply> {
    let asset = app
        .views
        .asset(req.param(0))
        .ok_or_else(|| Error::new(ErrorKind::NotFound, "No such file"))?;
    Ok(Reply::Static {
        content_type: asset.content_type,
        body: asset.body.into_owned(),
        cache_control: asset.cache_control,
    })
}
