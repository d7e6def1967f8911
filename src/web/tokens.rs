//! The API tokens page of the signed-in user: their tokens (never a token itself), a form to make
//! one, shown once on the page that answers the form, and a button to revoke each.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest};
use askama::Template;
use zoe_actors::logic::tokens::{self, TokenView};
use zoe_actors::state_actor::{CreateToken, RevokeToken};

use super::page::{render, see_other, sentence, tell, Layout, PageResult, Posted, WebUser};
use super::rows::show_time;
use crate::audit::Kind;
use crate::error::ApiError;
use crate::AppData;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/tokens", web::get().to(tokens_page))
        .route("/tokens", web::post().to(create))
        .route("/tokens/{name}/revoke", web::post().to(revoke));
}

/// A token as the page shows it.
pub struct TokenRow(pub TokenView);

impl TokenRow {
    pub fn created(&self) -> String {
        show_time(&self.0.created)
    }
    pub fn expires(&self) -> String {
        show_time(&self.0.expires)
    }
    pub fn last_used(&self) -> String {
        self.0.last_used.as_ref().map(show_time).unwrap_or_else(|| "never".into())
    }
}

#[derive(Template)]
#[template(path = "tokens.html")]
struct TokensPage {
    layout: Layout,
    tokens: Vec<TokenRow>,
    /// The token just made: shown this once.
    made: String,
    made_name: String,
    name: String,
    days: u32,
    notice: String,
    error: String,
}

#[derive(serde::Deserialize, Default)]
struct Notice {
    revoked: Option<String>,
}

async fn page(user: &WebUser, data: &AppData, fill: TokensPage, status: StatusCode) -> PageResult {
    let list = tokens::tokens(&data.reader.now(), &user.caller, None).map_err(|e| user.error(e))?;
    let page =
        TokensPage { layout: user.layout.at("tokens"), tokens: list.into_iter().map(TokenRow).collect(), ..fill };
    Ok(render(&page, status))
}

fn empty(user: &WebUser) -> TokensPage {
    TokensPage {
        layout: user.layout.clone(),
        tokens: Vec::new(),
        made: String::new(),
        made_name: String::new(),
        name: String::new(),
        days: 90,
        notice: String::new(),
        error: String::new(),
    }
}

async fn tokens_page(data: web::Data<AppData>, user: WebUser, notice: web::Query<Notice>) -> PageResult {
    let notice = notice.revoked.as_ref().map(|n| format!("Token {n} was revoked.")).unwrap_or_default();
    page(&user, &data, TokensPage { notice, ..empty(&user) }, StatusCode::OK).await
}

#[derive(serde::Deserialize)]
struct CreateForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    days: String,
}

async fn create(req: HttpRequest, data: web::Data<AppData>, Posted { user, form }: Posted<CreateForm>) -> PageResult {
    let name = form.name.trim().to_string();
    let days: u32 = form.days.trim().parse().unwrap_or(0);
    let made = async {
        tokens::check_new_token(&name, days)?;
        let token = crate::auth::new_token(user.caller.id);
        let hash = zoe_checkpoints::token_hash(&token);
        let msg =
            CreateToken { caller: user.caller.clone(), owner: None, name: name.clone(), hash, expires_days: days };
        tell(&data, msg).await?;
        Ok::<String, ApiError>(token)
    };
    match made.await {
        Ok(token) => {
            let trusted = &data.config.trusted_proxy;
            data.auth.record_token(&req, trusted, Kind::TokenCreated, &user.caller.name, &name, None);
            let fill = TokensPage { made: token, made_name: name, ..empty(&user) };
            page(&user, &data, fill, StatusCode::CREATED).await
        }
        Err(e) => {
            let status = crate::error::status_of(e.code);
            let fill = TokensPage { name, days, error: sentence(&e.message), ..empty(&user) };
            page(&user, &data, fill, status).await
        }
    }
}

async fn revoke(
    req: HttpRequest,
    data: web::Data<AppData>,
    name: web::Path<String>,
    // The form carries nothing but its token.
    Posted { user, form: _ }: Posted<serde::de::IgnoredAny>,
) -> PageResult {
    let name = name.into_inner();
    match tell(&data, RevokeToken { caller: user.caller.clone(), owner: None, name: name.clone() }).await {
        Ok(()) => {
            let trusted = &data.config.trusted_proxy;
            data.auth.record_token(&req, trusted, Kind::TokenRevoked, &user.caller.name, &name, None);
            Ok(see_other(&format!("/tokens?revoked={}", crate::percent::encode(&name))))
        }
        Err(e) => {
            let status = crate::error::status_of(e.code);
            page(&user, &data, TokensPage { error: sentence(&e.message), ..empty(&user) }, status).await
        }
    }
}
