//! The items routes.

use bytes::Bytes;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{HeaderMap, StatusCode};
use warp::reply::Response;

use super::admin::headers;
use super::error::{ApiError, SentenceBody};
use super::extract::{body, path_id, path_ids, raw_query, with_body};
use super::reply::{created, json};
use super::{Routed, State, answer, with_state};
use crate::domain::{Item, ItemPatch, NewItem, Resource, parse_item_body, parse_item_patch};
use crate::store::{Store, StoreError};

/// Every `/item` route.
pub fn routes<S: Store>(state: State<S>) -> BoxedFilter<(Routed,)> {
    let limit = state.max_body_bytes;
    let state = with_state(state);
    // POST /item {"name", "price"} -> 201 item
    let create = warp::path!("item")
        .and(warp::post())
        .and(headers())
        .and(body(limit))
        .and(state.clone())
        .then(create)
        .map(answer("/item"));
    // GET /item?offset=..&limit=..&min_price=..&max_price=..&show_deleted=..
    let list = warp::path!("item")
        .and(warp::get())
        .and(raw_query())
        .and(state.clone())
        .then(list)
        .map(answer("/item"));
    // GET /item/{id}
    let get = warp::path!("item" / String)
        .and(warp::get())
        .and(state.clone())
        .then(get)
        .map(answer("/item/{id}"));
    // PUT /item/{id} {"name", "price"}
    let replace = warp::path!("item" / String)
        .and(warp::put())
        .and(headers())
        .and(body(limit))
        .and(state.clone())
        .then(replace)
        .map(answer("/item/{id}"));
    // PATCH /item/{id} {"name"?, "price"?}
    let patch = warp::path!("item" / String)
        .and(warp::patch())
        .and(headers())
        .and(body(limit))
        .and(state.clone())
        .then(patch)
        .map(answer("/item/{id}"));
    // DELETE /item/{id}
    let delete = warp::path!("item" / String)
        .and(warp::delete())
        .and(headers())
        .and(state)
        .then(delete)
        .map(answer("/item/{id}"));
    create
        .or(list)
        .unify()
        .or(get)
        .unify()
        .or(replace)
        .unify()
        .or(patch)
        .unify()
        .or(delete)
        .unify()
        .boxed()
}

/// Creates an item; it starts not deleted.
#[utoipa::path(
    post,
    path = "/item",
    tag = "items",
    operation_id = "create_item",
    security((), ("admin_token" = [])),
    request_body(
        content = NewItem,
        description = "The new item. JSON whatever the Content-Type.",
    ),
    responses(
        (
            status = 201,
            description = "The item as stored",
            body = Item,
            headers(("Location" = String, description = "`/item/{id}` of the new item")),
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
async fn create<S: Store>(
    headers: HeaderMap,
    body: Result<Bytes, ApiError>,
    state: State<S>,
) -> Result<Response, ApiError> {
    state.access.item_write(&headers)?;
    let item = parse_item_body(&body?, state.max_name_chars)?;
    let item = state.store.create_item(item).await?;
    Ok(created(format!("/item/{}", item.id), &item))
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
pub(super) async fn list<S: Store>(query: String, state: State<S>) -> Result<Response, ApiError> {
    let filter = super::query::item_filter(&query, state.max_list_limit)?;
    let items = state.store.items(filter).await?;
    Ok(json(StatusCode::OK, &items))
}

/// Reads an item; a deleted one is not found.
#[utoipa::path(
    get,
    path = "/item/{id}",
    tag = "items",
    operation_id = "get_item",
    params(super::extract::ItemId),
    responses(
        (status = 200, description = "The item", body = Item),
        (status = 404, description = "No such item, or it is deleted", body = SentenceBody,
            example = json!({"detail": "Item 5 not found"})),
        (status = 422, response = super::error::Invalid),
    ),
)]
pub(super) async fn get<S: Store>(id: String, state: State<S>) -> Result<Response, ApiError> {
    let [id] = path_ids([path_id(&id, "id", Resource::Item)])?;
    let item = state.store.item(id).await?;
    if item.deleted {
        return Err(StoreError::ItemNotFound(id).into());
    }
    Ok(json(StatusCode::OK, &item))
}

/// Replaces an item's name and price (both required).
#[utoipa::path(
    put,
    path = "/item/{id}",
    tag = "items",
    operation_id = "replace_item",
    security((), ("admin_token" = [])),
    params(super::extract::ItemId),
    request_body(content = NewItem, description = "The new name and price."),
    responses(
        (status = 200, description = "The item after the change", body = Item),
        (status = 304, description = "The item is deleted: nothing changed (no body)"),
        super::error::ItemNotFound,
        (status = 401, response = super::error::Unauthorized),
        (status = 413, response = super::error::TooLarge),
        (status = 422, response = super::error::Invalid),
    ),
)]
async fn replace<S: Store>(
    id: String,
    headers: HeaderMap,
    body: Result<Bytes, ApiError>,
    state: State<S>,
) -> Result<Response, ApiError> {
    state.access.item_write(&headers)?;
    let ([id], item) = with_body(
        [path_id(&id, "id", Resource::Item)],
        parse_item_body(&body?, state.max_name_chars),
    )?;
    let item = state.store.replace_item(id, item).await?;
    Ok(json(StatusCode::OK, &item))
}

/// Changes any of an item's name and price; an empty object changes nothing.
#[utoipa::path(
    patch,
    path = "/item/{id}",
    tag = "items",
    operation_id = "patch_item",
    security((), ("admin_token" = [])),
    params(super::extract::ItemId),
    request_body(
        content = ItemPatch,
        description = "The fields to change. `deleted` or any other field is a 422.",
    ),
    responses(
        (status = 200, description = "The whole item after the change", body = Item),
        (status = 304, description = "The item is deleted: nothing changed (no body)"),
        super::error::ItemNotFound,
        (status = 401, response = super::error::Unauthorized),
        (status = 413, response = super::error::TooLarge),
        (status = 422, response = super::error::Invalid),
    ),
)]
async fn patch<S: Store>(
    id: String,
    headers: HeaderMap,
    body: Result<Bytes, ApiError>,
    state: State<S>,
) -> Result<Response, ApiError> {
    state.access.item_write(&headers)?;
    let ([id], patch) = with_body(
        [path_id(&id, "id", Resource::Item)],
        parse_item_patch(&body?, state.max_name_chars),
    )?;
    let item = state.store.patch_item(id, patch).await?;
    Ok(json(StatusCode::OK, &item))
}

/// Marks an item deleted; it stays in carts as unavailable. Idempotent.
#[utoipa::path(
    delete,
    path = "/item/{id}",
    tag = "items",
    operation_id = "delete_item",
    security((), ("admin_token" = [])),
    params(super::extract::ItemId),
    responses(
        (status = 401, response = super::error::Unauthorized),
        (status = 200, description = "The deleted item (also when it already was)", body = Item,
            example = json!({"id": 1, "name": "Tea", "price": 2.5, "deleted": true})),
        super::error::ItemNotFound,
        (status = 422, response = super::error::Invalid),
    ),
)]
async fn delete<S: Store>(
    id: String,
    headers: HeaderMap,
    state: State<S>,
) -> Result<Response, ApiError> {
    state.access.item_write(&headers)?;
    let [id] = path_ids([path_id(&id, "id", Resource::Item)])?;
    let item = state.store.delete_item(id).await?;
    Ok(json(StatusCode::OK, &item))
}
