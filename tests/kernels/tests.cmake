spoke_test(test_kernels ${CMAKE_CURRENT_LIST_DIR}/test_kernels.c LABELS unit TIMEOUT 120)
spoke_test(test_order ${CMAKE_CURRENT_LIST_DIR}/test_order.c LABELS unit TIMEOUT 120)
# micro-benchmark (built, not a test): build/bench_kernels [seconds per case]
if(NOT SPOKE_FUZZ)
  add_executable(bench_kernels ${CMAKE_CURRENT_LIST_DIR}/bench_kernels.c)
  target_include_directories(bench_kernels PRIVATE ${CMAKE_SOURCE_DIR}/tests)
  target_link_libraries(bench_kernels PRIVATE spoke_app)
endif()
