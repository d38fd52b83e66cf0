//! The facility's own records (`GET /console/catatan` as a facility): by status, and what
//! needs correcting and why. A placeholder for now — the page is being built on this
//! foundation; the navigation and the route are in place, and an operator is sent to the
//! overview's refused records instead.

use super::i18n::Key;
use super::layout::{self, Nav};
use super::{Ctx, Failure};
use crate::api::AppState;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::html;

/// `GET /console/catatan`.
pub async fn page(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, Failure> {
    let ctx = Ctx::new(&req, &state).await?;
    ctx.facility()?;
    let body = html! {
        section.card data-testid="coming-soon" {
            h1 { (ctx.t(Key::NavRecords)) }
            p.alert.alert-warn { (ctx.t(Key::ComingSoon)) }
            p { (ctx.t(Key::FacilityRecordsSoon)) }
        }
    };
    Ok(super::html(
        StatusCode::OK,
        layout::page(
            &ctx.shell(),
            ctx.t(Key::NavRecords),
            Some(Nav::Records),
            body,
        ),
    ))
}
