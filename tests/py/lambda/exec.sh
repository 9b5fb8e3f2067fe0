#!/bin/sh
# An executable Lambda speaking the IPC protocol with curl: for each invocation, publish the
# payload on out/exec through GGRouter, then post "done" as the result.
BASE="http://127.0.0.1:$GG_DAEMON_PORT/2016-11-01/functions"
AUTH="Authorization: $AWS_CONTAINER_AUTHORIZATION_TOKEN"
curl -sf -X PUT -H "$AUTH" --data '{"Success": true, "Response": ""}' "$BASE/$MY_FUNCTION_ARN/initialized" >/dev/null || exit 1
CTX=$(printf '{"custom": {"subject": "out/exec", "source": "%s"}}' "$MY_FUNCTION_ARN" | base64 -w0)
while true; do
    headers=$(mktemp)
    body=$(curl -sf -D "$headers" -H "$AUTH" "$BASE/$MY_FUNCTION_ARN/work") || exit 1
    id=$(tr -d '\r' < "$headers" | sed -n 's/^[Xx]-[Aa]mz-[Ii]nvocation[Ii]d: //p')
    rm -f "$headers"
    echo "invocation $id: $body"
    curl -sf -X POST -H "$AUTH" -H "X-Amz-Invocation-Type: Event" -H "X-Amz-Client-Context: $CTX" \
        --data-binary "exec got $body $1" "$BASE/$ROUTER_FUNCTION_ARN" >/dev/null || exit 1
    curl -sf -X POST -H "$AUTH" -H "X-Amz-InvocationId: $id" --data-binary "done" "$BASE/$MY_FUNCTION_ARN/work" >/dev/null || exit 1
done
