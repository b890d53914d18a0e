//! The items handlers (their routes are in `super::routes`).

use warp::http::StatusCode;
use warp::reply::Response;

use super::error::{ApiError, SentenceBody};
use super::etag::{fresh_or_ok, if_match};
use super::extract::{path_id, path_ids, with_body};
use super::reply::{json, sent, tagged_answer};
use super::router::Call;
use crate::domain::{Item, ItemPatch, NewItem, Resource, parse_item_body, parse_item_patch};
use crate::store::{Kept, Store, StoreError};

/// The answer to `POST /item`: 201, the item, its `Location` and `ETag`
/// (a replay of a kept created item renders it here too).
pub(in crate::http) fn created(item: &Item) -> Kept {
    let mut kept = tagged_answer(StatusCode::CREATED, item);
    kept.location = Some(format!("/item/{}", item.id));
    kept
}

/// The answer to a change of an item: 200, the item and its `ETag`.
fn changed(item: &Item) -> Kept {
    tagged_answer(StatusCode::OK, item)
}

/// Creates an item; it starts not deleted.
#[utoipa::path(
    post,
    path = "/item",
    tag = "items",
    operation_id = "create_item",
    request_body(
        content = NewItem,
        description = "The new item. JSON whatever the Content-Type.",
    ),
    responses(
        (
            status = 201,
            description = "The item as stored",
            body = Item,
            headers(
                ("Location" = String, description = "`/item/{id}` of the new item"),
                ("ETag" = String, description = "Strong ETag of the item's representation"),
            ),
            links(
                ("GetItem" = (operation_id = "get_item", parameters(("id" = "$response.body#/id")))),
                ("ReplaceItem" = (operation_id = "replace_item", parameters(("id" = "$response.body#/id")))),
                ("PatchItem" = (operation_id = "patch_item", parameters(("id" = "$response.body#/id")))),
                ("DeleteItem" = (operation_id = "delete_item", parameters(("id" = "$response.body#/id")))),
                ("AddToCart" = (operation_id = "add_to_cart", parameters(("item_id" = "$response.body#/id")))),
            ),
        ),
        (status = 401, response = super::error::Unauthorized),
        (status = 413, response = super::error::TooLarge),
        (status = 422, response = super::error::Invalid),
    ),
)]
pub(super) async fn create<S: Store>(mut call: Call<S>) -> Result<Response, ApiError> {
    let body = call.body(call.state().max_body_bytes).await?;
    let state = call.state();
    let item = parse_item_body(&body, state.max_name_chars)?;
    let item = state.store.create_item(item, call.keyed(created)).await?;
    Ok(sent(created(&item)))
}

/// Lists items by ascending id: filters first, then offset, then limit.
#[utoipa::path(
    get,
    path = "/item",
    tag = "items",
    operation_id = "list_items",
    params(super::query::ItemQuery),
    responses(
        (status = 200, description = "The page of matching items", body = Vec<Item>),
        (status = 422, response = super::error::Invalid),
    ),
)]
pub(super) async fn list<S: Store>(call: Call<S>) -> Result<Response, ApiError> {
    let state = call.state();
    let filter = super::query::item_filter(call.query(), state.max_list_limit)?;
    let items = state.store.items(filter).await?;
    Ok(json(StatusCode::OK, &items))
}

/// Reads an item; a deleted one is not found.
#[utoipa::path(
    get,
    path = "/item/{id}",
    tag = "items",
    operation_id = "get_item",
    params(super::extract::ItemId, super::etag::IfNoneMatch),
    responses(
        (status = 200, description = "The item", body = Item, headers(("ETag" = String, description = "Strong ETag of the item's representation"))),
        (status = 304, description = "`If-None-Match` lists the item's current ETag (compared weakly) or `*`: not modified (no body)",
            headers(("ETag" = String, description = "The item's current ETag"))),
        (status = 404, description = "No such item, or it is deleted", body = SentenceBody,
            example = json!({"detail": "Item 5 not found"})),
        (status = 422, response = super::error::Invalid),
    ),
)]
pub(super) async fn get<S: Store>(call: Call<S>) -> Result<Response, ApiError> {
    let [id] = path_ids([path_id(call.param(0), "id", Resource::Item)])?;
    let item = call.state().store.item(id).await?;
    if item.deleted {
        return Err(StoreError::ItemNotFound(id).into());
    }
    Ok(fresh_or_ok(call.headers(), &item))
}

/// Replaces an item's name and price (both required).
#[utoipa::path(
    put,
    path = "/item/{id}",
    tag = "items",
    operation_id = "replace_item",
    params(super::extract::ItemId, super::etag::IfMatch),
    request_body(content = NewItem, description = "The new name and price."),
    responses(
        (status = 200, description = "The item after the change", body = Item, headers(("ETag" = String, description = "Strong ETag of the item's representation"))),
        (status = 304, description = "The item is deleted: nothing changed (no body)"),
        super::error::ItemNotFound,
        (status = 412, response = super::error::PreconditionFailed),
        (status = 401, response = super::error::Unauthorized),
        (status = 413, response = super::error::TooLarge),
        (status = 422, response = super::error::Invalid),
    ),
)]
pub(super) async fn replace<S: Store>(mut call: Call<S>) -> Result<Response, ApiError> {
    let body = call.body(call.state().max_body_bytes).await?;
    let state = call.state();
    let ([id], item) = with_body(
        [path_id(call.param(0), "id", Resource::Item)],
        parse_item_body(&body, state.max_name_chars),
    )?;
    let item = state
        .store
        .replace_item(id, item, if_match(call.headers()), call.keyed(changed))
        .await?;
    Ok(sent(changed(&item)))
}

/// Changes any of an item's name and price; an empty object changes nothing.
#[utoipa::path(
    patch,
    path = "/item/{id}",
    tag = "items",
    operation_id = "patch_item",
    params(super::extract::ItemId, super::etag::IfMatch),
    request_body(
        content = ItemPatch,
        description = "The fields to change. `deleted` or any other field is a 422.",
    ),
    responses(
        (status = 200, description = "The whole item after the change", body = Item, headers(("ETag" = String, description = "Strong ETag of the item's representation"))),
        (status = 304, description = "The item is deleted: nothing changed (no body)"),
        super::error::ItemNotFound,
        (status = 412, response = super::error::PreconditionFailed),
        (status = 401, response = super::error::Unauthorized),
        (status = 413, response = super::error::TooLarge),
        (status = 422, response = super::error::Invalid),
    ),
)]
pub(super) async fn patch<S: Store>(mut call: Call<S>) -> Result<Response, ApiError> {
    let body = call.body(call.state().max_body_bytes).await?;
    let state = call.state();
    let ([id], patch) = with_body(
        [path_id(call.param(0), "id", Resource::Item)],
        parse_item_patch(&body, state.max_name_chars),
    )?;
    let item = state
        .store
        .patch_item(id, patch, if_match(call.headers()), call.keyed(changed))
        .await?;
    Ok(sent(changed(&item)))
}

/// Marks an item deleted; it stays in carts as unavailable. Idempotent.
#[utoipa::path(
    delete,
    path = "/item/{id}",
    tag = "items",
    operation_id = "delete_item",
    params(super::extract::ItemId, super::etag::IfMatch),
    responses(
        (status = 401, response = super::error::Unauthorized),
        (status = 200, description = "The deleted item (also when it already was)", body = Item,
            headers(("ETag" = String, description = "Strong ETag of the item's representation")),
            example = json!({"id": 1, "name": "Tea", "price": 2.5, "deleted": true})),
        super::error::ItemNotFound,
        (status = 412, response = super::error::PreconditionFailed),
        (status = 422, response = super::error::Invalid),
    ),
)]
pub(super) async fn delete<S: Store>(call: Call<S>) -> Result<Response, ApiError> {
    let [id] = path_ids([path_id(call.param(0), "id", Resource::Item)])?;
    let item = call
        .state()
        .store
        .delete_item(id, if_match(call.headers()), call.keyed(changed))
        .await?;
    Ok(sent(changed(&item)))
}
