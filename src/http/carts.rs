//! The carts handlers (their routes are in `super::routes`).

use serde::Serialize;
use utoipa::ToSchema;
use warp::http::StatusCode;
use warp::reply::Response;

use super::error::{ApiError, SentenceBody};
use super::extract::{path_id, path_ids};
use super::reply::{answer, json, sent};
use super::router::Call;
use crate::domain::{Cart, Id, Resource};
use crate::store::{Kept, Store};

/// The answer to `POST /cart`: 201, the new id and its `Location`.
#[allow(clippy::trivially_copy_pass_by_ref)] // every answer is `fn(&T) -> Kept`
pub(in crate::http) fn created(id: &Id) -> Kept {
    let mut kept = answer(StatusCode::CREATED, &NewCart { id: *id });
    kept.location = Some(format!("/cart/{id}"));
    kept
}

/// The answer to an add: 200 and the cart.
fn added(cart: &Cart) -> Kept {
    answer(StatusCode::OK, cart)
}

/// The reply to `POST /cart`.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": 1}))]
pub struct NewCart {
    /// The new cart's id.
    #[schema(value_type = u64, minimum = 1)]
    id: Id,
}

/// Creates an empty cart; a request body, if any, is not read.
#[utoipa::path(
    post,
    path = "/cart",
    tag = "carts",
    operation_id = "create_cart",
    responses(
        (
            status = 201,
            description = "The new cart's id",
            body = NewCart,
            headers(("Location" = String, description = "`/cart/{id}` of the new cart")),
            links(
                ("GetCart" = (operation_id = "get_cart", parameters(("id" = "$response.body#/id")))),
                ("AddToCart" = (operation_id = "add_to_cart", parameters(("cart_id" = "$response.body#/id")))),
            ),
        ),
    ),
)]
pub(super) async fn create<S: Store>(call: Call<S>) -> Result<Response, ApiError> {
    let id = call.state().store.create_cart(call.keyed(created)).await?;
    Ok(sent(created(&id)))
}

/// Lists carts by ascending id: filters first, then offset, then limit.
#[utoipa::path(
    get,
    path = "/cart",
    tag = "carts",
    operation_id = "list_carts",
    params(super::query::CartQuery),
    responses(
        (status = 200, description = "The page of matching carts", body = Vec<Cart>),
        (status = 422, response = super::error::Invalid),
    ),
)]
pub(super) async fn list<S: Store>(call: Call<S>) -> Result<Response, ApiError> {
    let state = call.state();
    let filter = super::query::cart_filter(call.query(), state.max_list_limit)?;
    let carts = state.store.carts(filter).await?;
    Ok(json(StatusCode::OK, &carts))
}

/// Reads a cart, priced from its items' current state.
#[utoipa::path(
    get,
    path = "/cart/{id}",
    tag = "carts",
    operation_id = "get_cart",
    params(super::extract::CartId, super::etag::IfNoneMatch),
    responses(
        (status = 200, description = "The cart", body = Cart,
            headers(("ETag" = String, description = "Strong ETag of the cart's representation: \
                it changes with its lines and with any line's live name, price or availability"))),
        (status = 304, description = "`If-None-Match` lists the cart's current ETag (compared weakly) or `*`: not modified (no body)",
            headers(("ETag" = String, description = "The cart's current ETag"))),
        (status = 404, description = "No such cart", body = SentenceBody,
            example = json!({"detail": "Cart 7 not found"})),
        (status = 422, response = super::error::Invalid),
    ),
)]
pub(super) async fn get<S: Store>(call: Call<S>) -> Result<Response, ApiError> {
    let [id] = path_ids([path_id(call.param(0), "id", Resource::Cart)])?;
    let cart = call.state().store.cart(id).await?;
    Ok(super::etag::fresh_or_ok(call.headers(), &cart))
}

/// Adds one of an item to a cart: quantity +1, or a new line with 1.
#[utoipa::path(
    post,
    path = "/cart/{cart_id}/add/{item_id}",
    tag = "carts",
    operation_id = "add_to_cart",
    params(super::extract::AddIds),
    responses(
        (status = 200, description = "The cart after the change", body = Cart),
        (status = 404, description = "No such cart, no such item, or the item is deleted",
            body = SentenceBody,
            examples(
                ("unknown cart" = (value = json!({"detail": "Cart 7 not found"}))),
                ("unknown item" = (value = json!({"detail": "Item 5 not found"}))),
                ("deleted item" = (value = json!({"detail": "Item 5 is deleted"}))),
            )),
        (status = 409, description = "The cart has the most distinct lines allowed (the \
            `max_cart_lines` setting) and the item is not one of them; nothing changed",
            body = SentenceBody,
            example = json!({"detail": "Cart 7 has the most lines allowed (1000)"})),
        (status = 422, response = super::error::Invalid),
    ),
)]
pub(super) async fn add<S: Store>(call: Call<S>) -> Result<Response, ApiError> {
    let ids = [
        path_id(call.param(0), "cart_id", Resource::Cart),
        path_id(call.param(1), "item_id", Resource::Item),
    ];
    let [cart, item] = path_ids(ids)?;
    let state = call.state();
    let cart = state
        .store
        .add_to_cart(cart, item, state.max_cart_lines, call.keyed(added))
        .await?;
    Ok(sent(added(&cart)))
}
