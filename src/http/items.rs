//! The items routes.

use bytes::Bytes;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use super::error::ApiError;
use super::extract::{body, path_id, path_ids, raw_query, with_body};
use super::reply::{created, json};
use super::{Routed, State, answer, with_state};
use crate::domain::{parse_item_body, parse_item_patch};
use crate::store::Store;

/// Every `/item` route.
pub fn routes<S: Store>(state: State<S>) -> BoxedFilter<(Routed,)> {
    let limit = state.max_body_bytes;
    let state = with_state(state);
    // POST /item {"name", "price"} -> 201 item
    let create = warp::path!("item")
        .and(warp::post())
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
        .and(body(limit))
        .and(state.clone())
        .then(replace)
        .map(answer("/item/{id}"));
    // PATCH /item/{id} {"name"?, "price"?}
    let patch = warp::path!("item" / String)
        .and(warp::patch())
        .and(body(limit))
        .and(state.clone())
        .then(patch)
        .map(answer("/item/{id}"));
    // DELETE /item/{id}
    let delete = warp::path!("item" / String)
        .and(warp::delete())
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

async fn create<S: Store>(
    body: Result<Bytes, ApiError>,
    state: State<S>,
) -> Result<Response, ApiError> {
    let item = parse_item_body(&body?)?;
    let item = state.store.create_item(item).await?;
    Ok(created(format!("/item/{}", item.id), &item))
}

async fn list<S: Store>(query: String, state: State<S>) -> Result<Response, ApiError> {
    let filter = super::query::item_filter(&query)?;
    let items = state.store.items(filter).await?;
    Ok(json(StatusCode::OK, &items))
}

async fn get<S: Store>(id: String, state: State<S>) -> Result<Response, ApiError> {
    let [id] = path_ids([path_id(&id, "id", "Item")], Vec::new())?;
    let item = state.store.item(id).await?;
    if item.deleted {
        return Err(ApiError::NotFound(format!("Item {id} not found")));
    }
    Ok(json(StatusCode::OK, &item))
}

async fn replace<S: Store>(
    id: String,
    body: Result<Bytes, ApiError>,
    state: State<S>,
) -> Result<Response, ApiError> {
    let ([id], item) = with_body([path_id(&id, "id", "Item")], parse_item_body(&body?))?;
    let item = state.store.replace_item(id, item).await?;
    Ok(json(StatusCode::OK, &item))
}

async fn patch<S: Store>(
    id: String,
    body: Result<Bytes, ApiError>,
    state: State<S>,
) -> Result<Response, ApiError> {
    let ([id], patch) = with_body([path_id(&id, "id", "Item")], parse_item_patch(&body?))?;
    let item = state.store.patch_item(id, patch).await?;
    Ok(json(StatusCode::OK, &item))
}

async fn delete<S: Store>(id: String, state: State<S>) -> Result<Response, ApiError> {
    let [id] = path_ids([path_id(&id, "id", "Item")], Vec::new())?;
    let item = state.store.delete_item(id).await?;
    Ok(json(StatusCode::OK, &item))
}
