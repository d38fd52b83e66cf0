//! The integrators' playground (`GET /console/playground`): choose a record type, paste a
//! record, see the Bundle and the OperationOutcome side by side — the same engine as
//! `gerbang map` and `gerbang validate`. A placeholder for now: the route and the navigation
//! entry are in place for the page being built on this foundation.

use super::i18n::Key;
use super::layout::{self, Nav};
use super::{Ctx, Failure};
use crate::api::AppState;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::html;

/// `GET /console/playground`: for anyone signed in.
pub async fn page(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, Failure> {
    let ctx = Ctx::new(&req, &state).await?;
    ctx.signed_in()?;
    let body = html! {
        section.card data-testid="coming-soon" {
            h1 { (ctx.t(Key::NavPlayground)) }
            p.alert.alert-warn { (ctx.t(Key::ComingSoon)) }
            p { (ctx.t(Key::PlaygroundSoon)) }
        }
    };
    Ok(super::html(
        StatusCode::OK,
        layout::page(
            &ctx.shell(),
            ctx.t(Key::NavPlayground),
            Some(Nav::Playground),
            body,
        ),
    ))
}
