spoke_test(test_sample ${CMAKE_CURRENT_LIST_DIR}/test_sample.c LABELS unit)
spoke_test(test_grammar ${CMAKE_CURRENT_LIST_DIR}/test_grammar.c LABELS unit)
# benchmark, not a test: build/bench_grammar MODEL.gguf [VOCAB.gguf...]
if(NOT SPOKE_FUZZ)
  add_executable(bench_grammar ${CMAKE_CURRENT_LIST_DIR}/bench_grammar.c)
  target_link_libraries(bench_grammar PRIVATE spoke_app)
endif()
