# The Realtime edge's browser test (tests/integration/test_realtime_browser.py)
# drives Debian's chromium through chromium-driver: Playwright and Selenium
# Manager cannot download a browser here, the Debian packages come from the
# package mirror. Installed once when missing (root, as CI runs; otherwise
# through sudo). The Python side (openai, selenium, websockets) is in pyproject's extras.

CHROMIUM_PACKAGES ?= chromium chromium-driver
APT_SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: realtime-browser
realtime-browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
		echo "installing $(CHROMIUM_PACKAGES) for the browser test"; \
		$(APT_SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(APT_SUDO) apt-get install -y -qq --no-install-recommends $(CHROMIUM_PACKAGES); \
	fi

TEST_DEPS += realtime-browser

# The TypeScript SDK's packages (sdk/typescript/package-lock.json), for
# tests/integration/test_typescript_sdk.py; Node 20 and npm come with the machine.
SDK_TS := sdk/typescript
$(SDK_TS)/node_modules/.installed: $(SDK_TS)/package.json $(SDK_TS)/package-lock.json
	cd $(SDK_TS) && npm ci --no-audit --no-fund --silent
	touch $@

TEST_DEPS += $(SDK_TS)/node_modules/.installed
