//! The console's stylesheet and script, embedded in the binary (nothing to deploy beside it,
//! nothing fetched from elsewhere) and served under a name that carries a hash of their
//! content — `/console/assets/style.3f9c0a1b2c.css` — so browsers may keep them for a year
//! and a new gerbang version is never shown with an old stylesheet.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use std::sync::LazyLock;

/// An embedded file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asset {
    Style,
    Script,
}

struct Embedded {
    asset: Asset,
    stem: &'static str,
    ext: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const FILES: [Embedded; 2] = [
    Embedded {
        asset: Asset::Style,
        stem: "style",
        ext: "css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("assets/style.css"),
    },
    Embedded {
        asset: Asset::Script,
        stem: "console",
        ext: "js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("assets/console.js"),
    },
];

/// Each file's served name, hashed once at first use.
static NAMES: LazyLock<Vec<String>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|f| {
            let hash = crate::store::sha256_hex(f.body);
            format!("{}.{}.{}", f.stem, &hash[..10], f.ext)
        })
        .collect()
});

/// Where a page links the asset.
pub fn url(asset: Asset) -> String {
    let i = FILES
        .iter()
        .position(|f| f.asset == asset)
        .expect("every asset is embedded");
    format!("/console/assets/{}", NAMES[i])
}

/// `GET /console/assets/{file}`: the file under its current name; any other name is 404
/// (an old name after an upgrade: the page that asked for it is stale too).
pub async fn serve(file: web::Path<String>) -> HttpResponse {
    match NAMES.iter().position(|n| *n == *file) {
        Some(i) => HttpResponse::Ok()
            .content_type(FILES[i].content_type)
            .insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"))
            .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .body(FILES[i].body),
        None => HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body("no such console asset; reload the page"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asset_urls_carry_a_content_hash() {
        let css = url(Asset::Style);
        assert!(css.starts_with("/console/assets/style."), "{css}");
        assert!(css.ends_with(".css"));
        assert_eq!(
            css.len(),
            "/console/assets/style.".len() + 10 + ".css".len()
        );
        assert!(url(Asset::Script).ends_with(".js"));
    }
}
