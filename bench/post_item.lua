-- wrk script: POST /item with a small JSON body.
wrk.method = "POST"
wrk.body = '{"name": "bench item", "price": 9.99}'
wrk.headers["Content-Type"] = "application/json"
