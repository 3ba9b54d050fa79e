# ponder: the two commands of the README are `make demo` and `make test`; both set everything up.
BUILD ?= build
JOBS ?= 2

MODEL ?= ../shared/models/stories260K.gguf
PROMPT ?= Once upon a time
N ?= 128

.PHONY: deps build test unit fuzz run demo clean

deps:
	@bash scripts/install-deps.sh

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)

unit: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

fuzz: deps
	@bash scripts/fuzz.sh $(BUILD)/fuzz

test: unit fuzz

# The main job: train a small reasoning model (SFT, then GRPO) and compare decoding strategies.
demo: build
	./$(BUILD)/ponder demo --out out/demo

# Generation with any GGUF model: greedy generation on a GGUF model you give (MODEL=..., PROMPT=..., N=...).
run: build
	./$(BUILD)/ponder generate -m "$(MODEL)" -p "$(PROMPT)" -n $(N)

clean:
	rm -rf $(BUILD)
